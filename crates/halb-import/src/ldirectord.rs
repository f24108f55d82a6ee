//! ldirectord.cf (ldirectord 4.12): filled in on branch import-ld.

use crate::emit::Emitter;
use crate::report::{Advice, Pos, Report};
use crate::{Input, Options, Source};

pub(crate) fn import(
    inputs: &[Input],
    _source: &dyn Source,
    _opts: &Options,
    _out: &mut Emitter,
    report: &mut Report,
) {
    for i in inputs {
        report.error(
            &Pos::file(&i.name),
            "",
            "importing ldirectord configurations is not implemented yet",
            Advice::None,
        );
    }
}
