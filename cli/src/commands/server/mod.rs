//! `cairn server start` and `cairn server user ...`.

mod start;
mod users;

use anyhow::Result;

use super::Context;
use crate::args::ServerCommand;

pub fn run(ctx: &Context, command: ServerCommand) -> Result<()> {
    match command {
        ServerCommand::Start(args) => start::run(ctx, args),
        ServerCommand::User(args) => users::run(ctx, args.command),
    }
}
