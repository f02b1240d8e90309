//! The modules' binary, `xenpci`: see [`xenpci::modules`].

fn main() -> std::process::ExitCode {
    xenpci::protocol::multicall(xenpci::modules::ALL)
}
