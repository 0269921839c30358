/// The version of the UniECG software (not of the model format; see ModelFormat.md).
public enum UniECGVersion {
    public static let string = "0.1.0"
    /// Shown wherever a user sees model output.
    public static let notice = "UniECG is an educational aid for learning to read ECGs, not a diagnostic device."
}
