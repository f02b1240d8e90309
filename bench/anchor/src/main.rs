//! A trivial Ansible binary module: reads the arguments file Ansible passes
//! as argv[1] and reports a no-op. The floor any binary module pays.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: serde_json::Value = std::env::args()
        .nth(1)
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let out = serde_json::json!({
        "changed": false,
        "failed": !args.is_object(),
        "msg": "nothing to do",
    });
    println!("{out}");
    ExitCode::SUCCESS
}
