//! `cairn server user add|set|list|delete`: users are records in the repository, so a running server sees
//! changes without a restart.

use anyhow::{bail, Result};
use cairn_transport::users;

use crate::args::ServerUserCommand;
use crate::commands::Context;
use crate::output;

fn user_password(given: Option<String>, name: &str) -> Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("no password for {name}: pass --user-password or run on a terminal");
    }
    let first = rpassword::prompt_password(format!("Enter password for {name}: "))?;
    let again = rpassword::prompt_password("Re-enter password for verification: ")?;
    if first != again {
        bail!("passwords do not match");
    }
    Ok(first)
}

/// ` (admin, isolated)` or nothing.
fn flags(user: &users::User) -> String {
    let set: Vec<&str> = [(user.admin, "admin"), (user.isolated, "isolated")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!(" ({})", set.join(", "))
    }
}

pub fn run(ctx: &Context, command: ServerUserCommand) -> Result<()> {
    let repo = ctx.open_direct()?;
    match command {
        ServerUserCommand::Add { name, user_password: pw, admin, isolated } => {
            users::validate_name(&name)?;
            let pw = user_password(pw, &name)?;
            let user = users::add(&repo, &name, &pw, admin, isolated)?;
            errln!("Added user {name}{}.", flags(&user));
        }
        ServerUserCommand::Set { name, user_password: pw, admin } => {
            if pw.is_none() && admin.is_none() {
                bail!("nothing to change: pass --user-password and/or --admin true|false");
            }
            users::set(&repo, &name, pw.as_deref(), admin)?;
            errln!("Updated user {name}.");
        }
        ServerUserCommand::List { json } => {
            let all = users::list(&repo)?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|u| {
                        serde_json::json!({"name": u.name, "admin": u.admin, "isolated": u.isolated, "created": u.created})
                    })
                    .collect();
                return output::json(&rows);
            }
            for u in all {
                outln!("{}{}", u.name, flags(&u));
            }
        }
        ServerUserCommand::Delete { name } => {
            users::delete(&repo, &name)?;
            errln!("Deleted user {name}.");
        }
    }
    Ok(())
}
