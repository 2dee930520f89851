//! libpq's password file (`passfile=`, `PGPASSFILE`, `~/.pgpass`): the password for a server
//! when neither the URI nor `PGPASSWORD` gives one.

/// Look `host:port:db:user` up in a libpq password file. The file is ignored (as libpq does)
/// unless it is a regular file with no group or world permissions. Fields are separated by
/// `:`, `\` escapes `:` and `\`, and `*` matches anything.
pub fn passfile_lookup(path: &std::path::Path, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], db)
            && matches(&fields[3], user)
        {
            return Some(fields.pop().expect("five fields"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_follows_libpq() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgsess-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "# comment\nother:5432:*:*:no\nh:*:db:u:first\n*:*:*:u:p\\:w\\\\d\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(passfile_lookup(&file, "h", "5432", "db", "u").as_deref(), Some("first"));
        assert_eq!(passfile_lookup(&file, "x", "1", "any", "u").as_deref(), Some("p:w\\d"));
        assert_eq!(passfile_lookup(&file, "x", "1", "any", "nobody"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(passfile_lookup(&file, "h", "5432", "db", "u"), None, "group/world readable: ignored");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
