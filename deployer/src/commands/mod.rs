//! One module per subcommand. Each builds a plan from its flags (reading and checking
//! everything it needs) and only then runs it, so a bad input fails before any output.

pub mod canary;
pub(crate) mod cluster;
pub(crate) mod dashboard;
pub(crate) mod local;
pub(crate) mod observe;
pub(crate) mod render;
pub(crate) mod shift;
pub(crate) mod target;

use crate::cli::{Cli, Command};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Render(args) => render::plan(args)?.run(),
        Command::Up(args) => local::up(args),
        Command::Down(args) => local::down(args),
        Command::Reload(args) => local::reload(args),
        Command::Status(args) => local::status(args),
        Command::Shift(args) => shift::shift(args),
        Command::Canary(args) => canary::canary(args),
        Command::Verify(args) => observe::verify(args),
        Command::Stats(args) => observe::stats(args),
        Command::Top(args) => observe::top(args),
        Command::Edges(args) => observe::edges(args),
        Command::Tap(args) => observe::tap(args),
        Command::Trace(args) => observe::trace(args),
        Command::Dashboard(args) => dashboard::dashboard(args),
        Command::Graph(args) => dashboard::graph(args),
        Command::Apply(args) => cluster::apply(args),
        Command::Delete(args) => cluster::delete(args),
        Command::Push(args) => cluster::push(args),
        Command::Supervise(args) => local::supervise(args),
    }
}
