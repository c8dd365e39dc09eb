//! Shared by the kernel side-by-side tests.

use std::process::Command;

/// Why the kernel cannot be used here (not root, a tool missing, no namespaces), if so.
pub(crate) fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["unshare", "python3", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output();
        if found.map_or(true, |o| !o.status.success()) {
            return Some(format!("{tool} not found"));
        }
    }
    if !Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some("cannot create a network namespace (unshare -n failed)".into());
    }
    None
}
