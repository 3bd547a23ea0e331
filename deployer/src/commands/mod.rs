//! One module per subcommand. Each builds a plan from its flags (reading and checking
//! everything it needs) and only then runs it, so a bad input fails before any output.

pub(crate) mod cluster;
pub(crate) mod dashboard;
pub(crate) mod local;
pub(crate) mod observe;
pub(crate) mod render;
pub(crate) mod shift;
