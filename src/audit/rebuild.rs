//! Rebuilding the views: the fold of the whole log (in bounded memory) made the stored views, row
//! by row, with only the rows that differ written.

use crate::audit::refold::refold;
use crate::backend::{Backend, Head, Tip};
use crate::error::{Error, Result};
use crate::views::ViewTree;

/// Refolds every view and index from the log and makes the stored views equal to the fold,
/// byte for byte; returns the head of the log. The log's chain is checked on the way; a
/// corrupt log is an error and changes nothing. Only rows that differ are written, so a
/// rebuild of healthy views writes almost nothing. Meta marks the views as folded up to seq 0
/// until the end, so a crash midway leaves them reported as lagging.
/// The tree's rows are its nodes of level `floor` and up.
pub fn rebuild(
    backend: &dyn Backend,
    fold_memory: usize,
    floor: u8,
    progress: &mut dyn FnMut(u64),
) -> Result<Head> {
    let mut folded = refold(backend.log(1), None, fold_memory, floor, progress)?;
    let report = folded.report.clone();
    if let Some(problem) = report.problem {
        return Err(Error::corrupt(format_args!(
            "cannot rebuild the views: the log is corrupt at {problem}"
        )));
    }
    let before = backend.tip()?;
    backend.set_tip(Tip { views_seq: 0, ..before })?;
    for view in ViewTree::ALL {
        backend.replace_view(view, &mut folded.rows_of(view))?;
    }
    // An empty log has the empty head, whatever meta said.
    let head = match report.head.seq {
        0 => Head::default(),
        seq => Head { seq, hash: report.head.hash, time_ms: report.time_ms },
    };
    backend.set_tip(Tip { head, views_seq: head.seq })?;
    Ok(head)
}
