//! `check!`: every check a test makes is printed, so a run shows what was verified.

/// `check!(cond, "format", args...)`: prints `  ok   <what>` when `cond` holds, else panics
/// with `FAILED: <what>`.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {{
        let what = format!($($fmt)+);
        if $cond {
            println!("  ok   {what}");
        } else {
            panic!("FAILED: {what}");
        }
    }};
}
