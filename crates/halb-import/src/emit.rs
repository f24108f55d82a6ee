//! Writing halb's TOML: a [`DocumentMut`] built item by item, each
//! virtual service, real server, check, VRRP instance, sync group and
//! resource group with a comment above it naming the file and line it
//! came from. The sections come out in a fixed order (`[global]`, then
//! the services, the VRRP instances, the sync groups, the resource
//! groups) whatever order the importer found them in.

use crate::report::Pos;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// The document under construction.
#[derive(Debug, Default)]
pub struct Emitter {
    header: Vec<String>,
    global: Table,
    services: Vec<Table>,
    vrrp_instances: Vec<Table>,
    sync_groups: Vec<Table>,
    resource_groups: Vec<Table>,
}

/// Put `# WHAT: FILE:LINE` above a table (replacing what was there).
pub fn origin(t: &mut Table, pos: &Pos, what: &str) {
    t.decor_mut()
        .set_prefix(format!("\n# {what} (from {}:{})\n", pos.file, pos.line));
}

/// A table with its origin comment.
pub fn table(pos: &Pos, what: &str) -> Table {
    let mut t = Table::new();
    origin(&mut t, pos, what);
    t
}

/// A comment line above key `key` of `t` (e.g. the name a resolved
/// address came from). The key must exist.
pub fn key_comment(t: &mut Table, key: &str, comment: &str) {
    if let Some(mut k) = t.key_mut(key) {
        k.leaf_decor_mut().set_prefix(format!("# {comment}\n"));
    }
}

impl Emitter {
    pub fn new() -> Self {
        Emitter::default()
    }

    /// A comment line at the top of the file.
    pub fn header(&mut self, line: impl Into<String>) {
        self.header.push(line.into());
    }

    /// `[global]`'s own keys.
    pub fn global(&mut self) -> &mut Table {
        &mut self.global
    }

    /// `[global.NAME]` (or `[global.A.B]` for `path = ["A", "B"]`),
    /// created with its origin comment when missing.
    pub fn global_table(&mut self, path: &[&str], pos: &Pos, what: &str) -> &mut Table {
        let mut t = &mut self.global;
        for name in path {
            let item = t.entry(name).or_insert(Item::None);
            if !item.is_table() {
                let mut sub = table(pos, what);
                sub.set_implicit(path.len() > 1);
                *item = Item::Table(sub);
            }
            t = match item {
                Item::Table(sub) => sub,
                _ => unreachable_table(),
            };
        }
        t.set_implicit(false);
        t
    }

    /// One `[[virtual_service]]`; returns its index (for
    /// [`Emitter::service_mut`]).
    pub fn virtual_service(&mut self, t: Table) -> usize {
        self.services.push(t);
        self.services.len() - 1
    }

    pub fn service_mut(&mut self, i: usize) -> Option<&mut Table> {
        self.services.get_mut(i)
    }

    pub fn services(&self) -> &[Table] {
        &self.services
    }

    /// One `[[vrrp_instance]]`.
    pub fn vrrp_instance(&mut self, t: Table) -> usize {
        self.vrrp_instances.push(t);
        self.vrrp_instances.len() - 1
    }

    pub fn vrrp_instance_mut(&mut self, i: usize) -> Option<&mut Table> {
        self.vrrp_instances.get_mut(i)
    }

    /// One `[[vrrp_sync_group]]`.
    pub fn vrrp_sync_group(&mut self, t: Table) {
        self.sync_groups.push(t);
    }

    /// One `[[resource_group]]` (its members added with [`push_member`]).
    pub fn resource_group(&mut self, t: Table) {
        self.resource_groups.push(t);
    }

    /// How many items there are of each kind (services, instances,
    /// sync groups, resource groups).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.services.len(),
            self.vrrp_instances.len(),
            self.sync_groups.len(),
            self.resource_groups.len(),
        )
    }

    /// The TOML text.
    pub fn finish(self) -> String {
        let mut doc = DocumentMut::new();
        let root = doc.as_table_mut();
        let mut global = self.global;
        if !global.is_empty() {
            let only_tables = global.iter().all(|(_, v)| v.is_table());
            global.set_implicit(only_tables);
            root.insert("global", Item::Table(global));
        }
        for (name, list) in [
            ("virtual_service", self.services),
            ("vrrp_instance", self.vrrp_instances),
            ("vrrp_sync_group", self.sync_groups),
            ("resource_group", self.resource_groups),
        ] {
            if list.is_empty() {
                continue;
            }
            let mut a = ArrayOfTables::new();
            for t in list {
                a.push(t);
            }
            root.insert(name, Item::ArrayOfTables(a));
        }
        let mut out = String::new();
        for h in &self.header {
            out.push_str("# ");
            out.push_str(h);
            out.push('\n');
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        let body = doc.to_string();
        out.push_str(body.trim_start_matches('\n'));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// A real server under a service (`[[virtual_service.real_server]]`).
pub fn push_real_server(service: &mut Table, t: Table) {
    push_array_table(service, "real_server", t);
}

/// A member under a resource group (`[[resource_group.member]]`).
pub fn push_member(group: &mut Table, t: Table) {
    push_array_table(group, "member", t);
}

fn push_array_table(parent: &mut Table, key: &str, t: Table) {
    if !parent.contains_array_of_tables(key) {
        parent.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
    }
    if let Some(a) = parent.get_mut(key).and_then(Item::as_array_of_tables_mut) {
        a.push(t);
    }
}

/// A `check` (or `persistence`, `alert`) sub-table of a service or real
/// server, with its origin comment.
pub fn set_sub_table(parent: &mut Table, key: &str, t: Table) {
    parent.insert(key, Item::Table(t));
}

/// `key = "string"`.
pub fn set_str(t: &mut Table, key: &str, v: impl AsRef<str>) {
    t.insert(key, value(v.as_ref()));
}

/// `key = integer`.
pub fn set_int(t: &mut Table, key: &str, v: i64) {
    t.insert(key, value(v));
}

/// `key = bool`.
pub fn set_bool(t: &mut Table, key: &str, v: bool) {
    t.insert(key, value(v));
}

/// `key = ["a", "b"]`.
pub fn set_str_array<S: AsRef<str>>(t: &mut Table, key: &str, items: &[S]) {
    let mut a = Array::new();
    for s in items {
        a.push(s.as_ref());
    }
    t.insert(key, value(a));
}

/// `key = [v, …]` of any values (inline tables, strings).
pub fn set_array(t: &mut Table, key: &str, items: Vec<Value>) {
    let mut a = Array::new();
    for v in items {
        a.push_formatted(v);
    }
    a.fmt();
    t.insert(key, value(a));
}

/// An inline table value `{ k = v, … }` from pairs.
pub fn inline(pairs: Vec<(&str, Value)>) -> Value {
    let mut t = InlineTable::new();
    for (k, v) in pairs {
        t.insert(k, v);
    }
    t.fmt();
    Value::InlineTable(t)
}

/// halb's duration syntax for a number of milliseconds: `"3s"`,
/// `"1500ms"`, `"5m"` (whole minutes of 5 or more), `"0s"`.
pub fn duration_ms(ms: u64) -> String {
    if ms == 0 {
        "0s".to_owned()
    } else if ms % 60_000 == 0 && ms >= 300_000 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn unreachable_table() -> ! {
    // `global_table` makes the item a table just before it matches it.
    panic!("a table inserted a line above is missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_in_order_with_origins() {
        let mut e = Emitter::new();
        e.header("imported by halb import keepalived from keepalived.conf");
        let p = Pos::new("keepalived.conf", 3, 1);
        let mut inst = table(&p, "vrrp_instance VI_1");
        set_str(&mut inst, "name", "VI_1");
        e.vrrp_instance(inst);
        let mut vs = table(
            &Pos::new("keepalived.conf", 10, 1),
            "virtual_server 192.0.2.1 80",
        );
        set_str(&mut vs, "listen", "192.0.2.1:80");
        let mut real = table(&Pos::new("keepalived.conf", 12, 5), "real_server");
        set_str(&mut real, "address", "198.51.100.1:80");
        let mut check = table(&Pos::new("keepalived.conf", 13, 9), "TCP_CHECK");
        set_str(&mut check, "type", "tcp");
        set_sub_table(&mut real, "check", check);
        push_real_server(&mut vs, real);
        e.virtual_service(vs);
        let alert = e.global_table(&["alert"], &Pos::new("keepalived.conf", 1, 1), "alerts");
        set_str_array(alert, "email", &["ops@example.com"]);
        let out = e.finish();
        insta::assert_snapshot!(out);
        assert!(halb_config::parse(&out, "out.toml".as_ref()).is_err()); // no VIPs: checked
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(0), "0s");
        assert_eq!(duration_ms(3000), "3s");
        assert_eq!(duration_ms(1500), "1500ms");
        assert_eq!(duration_ms(600_000), "10m");
        assert_eq!(duration_ms(60_000), "60s");
    }
}
