// swift-tools-version:6.0
// UniECG — an offline ECG teaching engine: a C core (CRuntime) that runs int8 models from
// .uecg files, a Swift library and CLI around it, and the converter that writes those files.
import PackageDescription

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "UniECG",
    products: [
        .library(name: "UniECG", targets: ["UniECG"]),
        .executable(name: "uniecg", targets: ["uniecg"]),
        .executable(name: "uniecg-convert", targets: ["uniecg-convert"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libzstd from the system (Debian: libzstd-dev), found through pkg-config.
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // The C core. Its whole public API is CRuntime/include/uniecg.h.
        .target(
            name: "CUniECG",
            dependencies: ["CZstd"],
            path: "CRuntime",
            exclude: ["tests"],
            sources: ["common", "format", "kernels", "text", "diffusion", "vision"],
            publicHeadersPath: "include",
            cSettings: [.headerSearchPath("common"), .headerSearchPath("format"), .headerSearchPath("kernels")]
        ),
        .target(name: "UniECG", dependencies: ["CUniECG"], path: "Sources/UniECG"),
        .executableTarget(name: "uniecg", dependencies: ["UniECG", argumentParser], path: "Sources/uniecg"),
        // The converter: Hugging Face / PyTorch exports -> .uecg.
        .target(name: "ModelConversion", dependencies: ["UniECG", "CUniECG"], path: "Tools/Convert/ModelConversion"),
        .executableTarget(
            name: "uniecg-convert",
            dependencies: ["ModelConversion", "UniECG", argumentParser],
            path: "Tools/Convert/uniecg-convert"
        ),
        .testTarget(
            name: "UniECGTests",
            dependencies: ["UniECG", "CUniECG", "ModelConversion"],
            path: "Tests/UniECGTests"
        ),
    ]
)
