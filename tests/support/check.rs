//! `check!`: every check a test makes is printed, so a run shows what was verified.

/// `check!(cond, "format", args...)`: prints `  ok   <what>` when `cond` holds, else panics
/// with `FAILED: <what>`. The condition is evaluated first, so a message shows the state after
/// whatever the condition waited for.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {{
        let holds: bool = $cond;
        let what = format!($($fmt)+);
        if holds {
            println!("  ok   {what}");
        } else {
            panic!("FAILED: {what}");
        }
    }};
}
