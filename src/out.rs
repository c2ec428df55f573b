//! Writing to stdout without panicking: a closed pipe (`callstate log stats | head -3`) is a
//! normal end, which `main` turns into a quiet exit, so every write returns its error.

/// `writeln!` to stdout, returning the `io::Result` (use with `?`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `write!` to stdout, returning the `io::Result`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub(crate) use {out, outln};
