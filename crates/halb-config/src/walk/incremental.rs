//! Loading a file again: only the virtual services whose text changed are
//! parsed and walked again.
//!
//! The file is cut at the lines that start a `[[virtual_service]]` table
//! and at the lines that start any other root table (`[global]`,
//! `[[vrrp_instance]]`, …). A service piece runs from its header to the next
//! cut and holds that service's sub-tables; the other pieces ("the rest")
//! are walked together, as one document. This gives the same config as
//! walking the whole file ([`super::check`]) when
//!
//! - every piece parses on its own: a piece that ends inside a multi-line
//!   string or array does not, so every cut is at a real header line;
//! - each service piece holds exactly one `[[virtual_service]]` table and
//!   nothing else (its sub-table headers name the last service, which is
//!   its own in the file as well as alone);
//! - the rest defines no `virtual_service` key.
//!
//! A service piece whose text and rest are those of the last load is not
//! walked again: its walk depends only on its text and on what `[global]`
//! gives it. Anything else (a condition not met, any problem at all) falls
//! back to walking the whole file, which also gives the errors their
//! places, so a config is accepted or rejected exactly as [`super::check`]
//! decides. tests/incremental.rs checks that equivalence on generated
//! configs and edits.

use super::{Cx, Head, Node, Svc, Tbl};
use crate::Config;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use toml_edit::{ImDocument, Item};

/// Fewer pieces to walk than this: one thread does them all.
const PARALLEL_FROM: usize = 256;

/// What the last load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Virtual-service pieces the file was cut into (0 when it was walked
    /// whole).
    pub pieces: usize,
    /// Of those, taken from the last load without parsing them again.
    pub reused: usize,
    /// Whether the whole file was walked at once (a small file, a layout
    /// the pieces cannot express, or a config with problems).
    pub whole: bool,
}

/// The walked services of the last load that succeeded, with their text.
#[derive(Default)]
pub(crate) struct Cache {
    /// That load's file.
    src: String,
    rest: String,
    /// Each service piece of `src`, in file order, walked.
    services: Vec<(Range<usize>, Svc)>,
}

impl Cache {
    /// Where `text` (the next piece after the last one found) was in the
    /// last load: the next piece of the last load, or the one after it
    /// (a piece changed or removed), or, for pieces moved about, anywhere.
    fn find<'c>(
        &'c self,
        text: &str,
        next: usize,
        index: &mut Option<HashMap<&'c str, usize>>,
    ) -> Option<usize> {
        let at = |k: usize| {
            self.services
                .get(k)
                .and_then(|(r, _)| self.src.get(r.clone()))
        };
        for k in [next, next + 1] {
            if at(k) == Some(text) {
                return Some(k);
            }
        }
        index
            .get_or_insert_with(|| {
                (0..self.services.len())
                    .filter_map(|k| Some((at(k)?, k)))
                    .collect()
            })
            .get(text)
            .copied()
    }
}

/// A header line's role in cutting the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// `[[virtual_service]]`: a service piece starts.
    Service,
    /// Another root table: a piece of the rest starts.
    Other,
}

/// Where the pieces start: `(offset, kind)`, in file order. Text before the
/// first cut is the start of the rest.
fn cuts(src: &str) -> Vec<(usize, Cut)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_start_matches([' ', '\t']);
        if t.starts_with('[') {
            let cut = if let Some(after) = t.strip_prefix("[[virtual_service]]") {
                let after = after.trim();
                if after.is_empty() || after.starts_with('#') {
                    Some(Cut::Service)
                } else {
                    Some(Cut::Other)
                }
            } else if t.starts_with("[virtual_service.") || t.starts_with("[[virtual_service.") {
                None
            } else {
                Some(Cut::Other)
            };
            if let Some(c) = cut {
                out.push((at, c));
            }
        }
        at += line.len();
    }
    out
}

/// Where the file's service pieces and the pieces of the rest are, in
/// file order.
fn pieces(src: &str) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let cuts = cuts(src);
    let mut services = Vec::new();
    let mut rest = Vec::new();
    let first = cuts.first().map_or(src.len(), |c| c.0);
    if first > 0 {
        rest.push(0..first);
    }
    for (i, &(start, kind)) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(src.len(), |c| c.0);
        match kind {
            Cut::Service => services.push(start..end),
            Cut::Other => rest.push(start..end),
        }
    }
    (services, rest)
}

/// Walk `src`, reusing the services of the last load where their text is
/// unchanged; `None` when the pieces cannot give the answer (the caller
/// walks the whole file).
pub(crate) fn check(
    src: &str,
    file: &Path,
    cache: &mut Cache,
    stats: &mut LoadStats,
) -> Option<Config> {
    let (ranges, rest_ranges) = pieces(src);
    let services: Vec<&str> = ranges.iter().filter_map(|r| src.get(r.clone())).collect();
    let rest_pieces: Vec<&str> = rest_ranges
        .iter()
        .filter_map(|r| src.get(r.clone()))
        .collect();
    if services.len() < 2 || services.len() != ranges.len() {
        return None;
    }
    // Each piece of the rest must end where a table may start.
    for p in &rest_pieces {
        ImDocument::parse(*p).ok()?;
    }
    let rest = rest_pieces.concat();
    let doc = ImDocument::parse(rest.as_str()).ok()?;
    if doc.as_table().contains_key("virtual_service") {
        return None;
    }
    let mut cx = Cx::new(&rest, file);
    let root = Node {
        tbl: Tbl::Std(doc.as_table()),
        path: String::new(),
        span: 0..0,
    };
    let head = cx.head(&root);
    if !cx.errors.is_empty() {
        return None;
    }
    let same_rest = cache.rest == rest;
    let mut walked: Vec<Option<Svc>> = Vec::with_capacity(services.len());
    let mut todo = Vec::new();
    let (mut next, mut index) = (0, None);
    for (i, text) in services.iter().enumerate() {
        let hit = if same_rest {
            cache.find(text, next, &mut index)
        } else {
            None
        };
        match hit.and_then(|k| Some((k, cache.services.get(k)?))) {
            Some((k, (_, s))) => {
                walked.push(Some(s.clone()));
                next = k + 1;
            }
            None => {
                walked.push(None);
                todo.push(i);
            }
        }
    }
    drop(index);
    let reused = services.len() - todo.len();
    for (i, svc) in walk_all(&services, &todo, file, &head) {
        walked[i] = Some(svc?);
    }
    let svcs: Vec<Svc> = walked.into_iter().collect::<Option<_>>()?;
    let config = cx.finish(&root, head.global, &head.alert, &svcs);
    if !cx.errors.is_empty() {
        return None;
    }
    *cache = Cache {
        src: src.to_owned(),
        rest,
        services: ranges.into_iter().zip(svcs).collect(),
    };
    *stats = LoadStats {
        pieces: services.len(),
        reused,
        whole: false,
    };
    Some(config)
}

/// Walk the service pieces `todo` (indexes into `services`), on several
/// threads when there are many; `None` for a piece that does not walk
/// cleanly on its own.
fn walk_all(
    services: &[&str],
    todo: &[usize],
    file: &Path,
    head: &Head,
) -> Vec<(usize, Option<Svc>)> {
    let one = |i: usize| (i, walk_one(services[i], i, file, head));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if todo.len() < PARALLEL_FROM || threads < 2 {
        return todo.iter().map(|&i| one(i)).collect();
    }
    let per = todo.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(|&i| one(i)).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(todo.len());
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A walk that panicked: the whole-file walk decides.
                Err(_) => out.extend(todo.iter().map(|&i| (i, None))),
            }
        }
        out
    })
}

/// One service piece, walked as the `index`-th service of the file.
fn walk_one(text: &str, index: usize, file: &Path, head: &Head) -> Option<Svc> {
    let doc = ImDocument::parse(text).ok()?;
    let root = doc.as_table();
    if root.len() != 1 {
        return None;
    }
    let Some(Item::ArrayOfTables(a)) = root.get("virtual_service") else {
        return None;
    };
    if a.len() != 1 {
        return None;
    }
    let mut cx = Cx::new(text, file);
    let node = Node {
        tbl: Tbl::Std(root),
        path: String::new(),
        span: 0..0,
    };
    let f = cx.field(&node, "virtual_service")?;
    let (_, tbl, span) = cx
        .tables(&f, "virtual_service", "listen = \"0.0.0.0:80\"")
        .pop()?;
    let svc = cx.service(tbl, span, index, head);
    (svc.ok && cx.errors.is_empty()).then_some(svc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_root_headers_only() {
        let src = "# top\n[global]\nworkers = 1\n[[virtual_service]] # web\nlisten = \"x\"\n  [virtual_service.persistence]\n[[virtual_service.real_server]]\n[[virtual_service]]\n[[vrrp_instance]]\nname = \"a\"\n";
        let (services, rest) = pieces(src);
        let text = |r: &Vec<Range<usize>>| r.iter().map(|r| &src[r.clone()]).collect::<Vec<_>>();
        let (services, rest) = (text(&services), text(&rest));
        assert_eq!(
            services,
            [
                "[[virtual_service]] # web\nlisten = \"x\"\n  [virtual_service.persistence]\n[[virtual_service.real_server]]\n",
                "[[virtual_service]]\n"
            ]
        );
        assert_eq!(
            rest,
            [
                "# top\n",
                "[global]\nworkers = 1\n",
                "[[vrrp_instance]]\nname = \"a\"\n"
            ]
        );
    }

    #[test]
    fn a_header_with_text_after_it_is_not_a_service_cut() {
        let c = cuts("[[virtual_service]] x\n[[virtual_service]]\r\n[virtual_service]\n");
        assert_eq!(c, [(0, Cut::Other), (22, Cut::Service), (43, Cut::Other)]);
    }
}
