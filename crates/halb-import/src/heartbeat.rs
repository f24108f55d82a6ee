//! heartbeat v1: ha.cf, haresources, authkeys (and the ldirectord config an ldirectord::NAME resource names): filled in on branch import-ld.

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
            "importing heartbeat configurations is not implemented yet",
            Advice::None,
        );
    }
}
