//! An OCF agent's `meta-data` (the XML of
//! `/usr/share/resource-agents/ra-api-1.dtd`), parsed: its parameters and
//! the operation timeouts it suggests. Pure: the agents shell runs the
//! agent, halb-config checks a member's parameters against this.

use std::fmt;
use std::time::Duration;

/// What an agent says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaData {
    /// `<resource-agent name=…>`.
    pub name: String,
    pub parameters: Vec<Parameter>,
    /// `<action name timeout interval depth>`, as given.
    pub actions: Vec<ActionHint>,
}

/// One `<parameter>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub required: bool,
    pub unique: bool,
    /// `<shortdesc>` (English if there are several).
    pub short: String,
    /// `<content type>`: string, integer, boolean, …
    pub kind: Option<String>,
    /// `<content default>`.
    pub default: Option<String>,
}

/// One `<action>`: the timeouts there are hints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionHint {
    pub name: String,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub depth: Option<u32>,
}

impl MetaData {
    /// The suggested timeout of `action` (`start`, `stop`, `monitor`):
    /// the first hint of that name that has one.
    pub fn timeout(&self, action: &str) -> Option<Duration> {
        self.actions
            .iter()
            .filter(|a| a.name == action)
            .find_map(|a| a.timeout)
    }

    /// The suggested monitor interval (the first `monitor` hint with a
    /// non-zero interval).
    pub fn monitor_interval(&self) -> Option<Duration> {
        self.actions
            .iter()
            .filter(|a| a.name == "monitor")
            .find_map(|a| a.interval.filter(|i| !i.is_zero()))
    }

    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// "  state (string): Location to store the resource state in" lines,
    /// for an error that lists what the agent takes.
    pub fn describe_parameters(&self) -> String {
        let mut s = String::new();
        for p in &self.parameters {
            s.push_str("  ");
            s.push_str(&p.name);
            if p.required {
                s.push_str(" (required)");
            }
            if !p.short.is_empty() {
                s.push_str(": ");
                s.push_str(&p.short);
            }
            s.push('\n');
        }
        s
    }
}

/// Why meta-data could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaDataError(pub String);

impl fmt::Display for MetaDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent meta-data: {}", self.0)
    }
}

impl std::error::Error for MetaDataError {}

/// A Pacemaker duration: a number with an optional unit (`ms`, `msec`,
/// `us`, `usec`, `s`, `sec`, `m`, `min`, `h`, `hr`; none: seconds), as
/// `crm_get_msec` reads them.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" | "msec" => Duration::from_millis(n),
        "us" | "usec" => Duration::from_micros(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" | "hr" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d)
}

fn shortdesc(node: roxmltree::Node<'_, '_>) -> String {
    let descs: Vec<_> = node
        .children()
        .filter(|c| c.has_tag_name("shortdesc"))
        .collect();
    descs
        .iter()
        .find(|d| d.attribute("lang").is_none_or(|l| l == "en"))
        .or(descs.first())
        .and_then(|d| d.text())
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Parses an agent's `meta-data` output.
pub fn parse(xml: &str) -> Result<MetaData, MetaDataError> {
    // Agents declare `<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">`.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| MetaDataError(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("resource-agent") {
        return Err(MetaDataError(format!(
            "the root element is <{}>, not <resource-agent>",
            root.tag_name().name()
        )));
    }
    let flag =
        |n: roxmltree::Node<'_, '_>, a: &str| matches!(n.attribute(a), Some("1" | "true" | "yes"));
    let mut md = MetaData {
        name: root.attribute("name").unwrap_or_default().to_owned(),
        ..MetaData::default()
    };
    for section in root.children().filter(|c| c.is_element()) {
        if section.has_tag_name("parameters") {
            for p in section.children().filter(|c| c.has_tag_name("parameter")) {
                let Some(name) = p.attribute("name") else {
                    return Err(MetaDataError("a <parameter> without a name".into()));
                };
                let content = p.children().find(|c| c.has_tag_name("content"));
                md.parameters.push(Parameter {
                    name: name.to_owned(),
                    required: flag(p, "required"),
                    unique: flag(p, "unique"),
                    short: shortdesc(p),
                    kind: content.and_then(|c| c.attribute("type")).map(str::to_owned),
                    default: content
                        .and_then(|c| c.attribute("default"))
                        .map(str::to_owned),
                });
            }
        } else if section.has_tag_name("actions") {
            for a in section.children().filter(|c| c.has_tag_name("action")) {
                md.actions.push(ActionHint {
                    name: a.attribute("name").unwrap_or_default().to_owned(),
                    timeout: a.attribute("timeout").and_then(parse_duration),
                    interval: a.attribute("interval").and_then(parse_duration),
                    depth: a.attribute("depth").and_then(|d| d.parse().ok()),
                });
            }
        }
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of resource-agents 4.12's Dummy (abridged).
    const DUMMY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Dummy" version="1.0">
<version>1.0</version>
<longdesc lang="en">This is a Dummy Resource Agent.</longdesc>
<shortdesc lang="en">Example stateless resource agent</shortdesc>
<parameters>
<parameter name="state" unique="1">
<longdesc lang="en">Location to store the resource state in.</longdesc>
<shortdesc lang="en">State file</shortdesc>
<content type="string" default="/run/resource-agents/Dummy-undef.state" />
</parameter>
<parameter name="fake" unique="0" required="1">
<longdesc lang="en">Fake attribute that can be changed to cause a reload</longdesc>
<shortdesc lang="en">Fake
  attribute</shortdesc>
<content type="string" default="dummy" />
</parameter>
</parameters>
<actions>
<action name="start"        timeout="20s" />
<action name="stop"         timeout="20s" />
<action name="monitor"      timeout="20s" interval="10s" depth="0"/>
<action name="meta-data"    timeout="5s" />
</actions>
</resource-agent>
"#;

    #[test]
    fn dummy_meta_data() {
        let md = parse(DUMMY).unwrap();
        assert_eq!(md.name, "Dummy");
        assert_eq!(md.parameters.len(), 2);
        let state = md.parameter("state").unwrap();
        assert!(!state.required && state.unique);
        assert_eq!(state.short, "State file");
        assert_eq!(state.kind.as_deref(), Some("string"));
        assert_eq!(
            state.default.as_deref(),
            Some("/run/resource-agents/Dummy-undef.state")
        );
        let fake = md.parameter("fake").unwrap();
        assert!(fake.required);
        assert_eq!(fake.short, "Fake attribute");
        assert_eq!(md.timeout("start"), Some(Duration::from_secs(20)));
        assert_eq!(md.timeout("meta-data"), Some(Duration::from_secs(5)));
        assert_eq!(md.timeout("promote"), None);
        assert_eq!(md.monitor_interval(), Some(Duration::from_secs(10)));
        assert_eq!(md.actions[2].depth, Some(0));
        assert!(md
            .describe_parameters()
            .contains("fake (required): Fake attribute"));
    }

    #[test]
    fn bad_meta_data_is_an_error() {
        assert!(parse("not xml").is_err());
        assert!(parse("<html/>").unwrap_err().0.contains("<html>"));
        assert!(
            parse("<resource-agent><parameters><parameter/></parameters></resource-agent>")
                .is_err()
        );
    }

    #[test]
    fn durations_as_pacemaker_reads_them() {
        assert_eq!(parse_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
