//! A statement run once per row of a batch, its parameters bound one by one, and those that
//! repeat from row to row (the destination, the audience, a status, the batch's clock) bound
//! only when their value changes. SQLite keeps a statement's bindings from one run to the
//! next, and each bind is a call through rusqlite in which SQLite copies a text (about 280
//! instructions for one text bound, callgrind): part (c) bound 27 parameters per accepted
//! event and 13 per settled outcome.
//!
//! A `Rebound` lives for one batch and remembers nothing at first, so a batch's first row binds
//! every parameter. Each run checks that every parameter of the statement was bound or kept
//! for it (a parameter left out would silently be NULL, or keep the previous row's value).

use rusqlite::CachedStatement;

/// The value bound last to a repeating parameter.
#[derive(Debug, PartialEq)]
enum Last {
    Int(Option<i64>),
    Text(Option<String>),
}

/// A cached statement with its repeating parameters remembered (see the module doc).
pub(super) struct Rebound<'c> {
    stmt: CachedStatement<'c>,
    /// By parameter index less one: what was bound last, for the parameters bound with
    /// [`Rebound::repeating_int`] and [`Rebound::repeating_text`].
    last: Vec<Option<Last>>,
    /// The parameters (bit `i - 1`, the first 64) bound or kept for the next run.
    given: u64,
}

impl<'c> Rebound<'c> {
    pub(super) fn new(stmt: CachedStatement<'c>) -> Self {
        let last = (0..stmt.parameter_count()).map(|_| None).collect();
        Self {
            stmt,
            last,
            given: 0,
        }
    }

    /// Binds `value` to parameter `i` (from 1), every time.
    pub(super) fn bind<T: rusqlite::ToSql>(&mut self, i: usize, value: T) -> rusqlite::Result<()> {
        *self.slot(i)? = None;
        self.stmt.raw_bind_parameter(i, value)?;
        self.given |= bit(i);
        Ok(())
    }

    /// Binds `value` to parameter `i` (from 1) unless the same value was bound to it last
    /// through this method.
    pub(super) fn repeating_int(&mut self, i: usize, value: Option<i64>) -> rusqlite::Result<()> {
        let kept = *self.slot(i)? == Some(Last::Int(value));
        self.bind_unless(kept, i, value, || Last::Int(value))
    }

    /// Binds `value` to parameter `i` (from 1) unless the same value was bound to it last
    /// through this method.
    pub(super) fn repeating_text(&mut self, i: usize, value: Option<&str>) -> rusqlite::Result<()> {
        let kept = matches!(self.slot(i)?, Some(Last::Text(last)) if last.as_deref() == value);
        self.bind_unless(kept, i, value, || Last::Text(value.map(str::to_string)))
    }

    /// Runs the statement with what is bound: the rows it changed. An error, with nothing
    /// run, when a parameter was neither bound nor kept for this run.
    pub(super) fn execute(&mut self) -> rusqlite::Result<usize> {
        let given = std::mem::take(&mut self.given);
        let n = self.last.len();
        let all = 1u64.checked_shl(n as u32).map_or(u64::MAX, |past| past - 1);
        if given != all {
            return Err(rusqlite::Error::InvalidParameterCount(
                given.count_ones() as usize,
                n,
            ));
        }
        self.stmt.raw_execute()
    }

    /// Binds `value` to parameter `i` and remembers it as `last()`, unless it is `kept`.
    fn bind_unless<T: rusqlite::ToSql>(
        &mut self,
        kept: bool,
        i: usize,
        value: T,
        last: impl FnOnce() -> Last,
    ) -> rusqlite::Result<()> {
        if kept {
            self.given |= bit(i);
        } else {
            self.bind(i, value)?;
            *self.slot(i)? = Some(last());
        }
        Ok(())
    }

    fn slot(&mut self, i: usize) -> rusqlite::Result<&mut Option<Last>> {
        let n = self.last.len();
        self.last
            .get_mut(i.wrapping_sub(1))
            // Built only when missing: `ok_or` built and dropped an error at every lookup
            // (about 20 instructions each, about 43 lookups per event in part (c)).
            .ok_or_else(|| rusqlite::Error::InvalidParameterCount(i, n))
    }
}

/// Parameter `i`'s bit in [`Rebound::given`] (none past the 64th).
fn bit(i: usize) -> u64 {
    u32::try_from(i.wrapping_sub(1))
        .ok()
        .and_then(|shift| 1u64.checked_shl(shift))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A repeating parameter keeps its value across runs, and takes a new one (a null, a
    /// number, a text, an empty text or zero after a null and back) as soon as it changes; a
    /// parameter bound every time is never skipped, also after the same value was bound to it
    /// as a repeating one; a run missing a parameter is refused.
    #[test]
    fn repeating_parameters_are_bound_when_they_change() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (a, b, c)")
            .expect("table");
        let mut st = Rebound::new(
            conn.prepare_cached("INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)")
                .expect("prepare"),
        );
        let rows: [(Option<&str>, Option<i64>, i64); 9] = [
            (Some("x"), Some(1), 10),
            (Some("x"), Some(1), 11),
            (None, Some(1), 12),
            (Some("y"), None, 13),
            (Some(""), None, 14),
            (Some("y"), Some(2), 15),
            (None, Some(0), 16),
            (Some(""), None, 17),
            (None, Some(0), 18),
        ];
        for (a, b, c) in rows {
            st.repeating_text(1, a).expect("a");
            st.repeating_int(2, b).expect("b");
            st.bind(3, c).expect("c");
            assert_eq!(st.execute().expect("insert"), 1);
        }
        // Bound every time after a repeating bind of the same value: still bound.
        st.repeating_int(3, Some(20)).expect("c");
        st.bind(3, 21).expect("c");
        st.repeating_int(3, Some(21)).expect("c");
        st.repeating_text(1, Some("y")).expect("a");
        st.repeating_int(2, Some(2)).expect("b");
        st.execute().expect("insert");
        st.bind(3, 22).expect("c");
        st.repeating_int(3, Some(21)).expect("c");
        st.repeating_text(1, Some("y")).expect("a");
        st.repeating_int(2, Some(2)).expect("b");
        st.execute().expect("insert");
        // A run with a parameter neither bound nor kept is refused, and runs nothing.
        st.repeating_text(1, Some("y")).expect("a");
        st.bind(3, 23).expect("c");
        assert!(matches!(
            st.execute(),
            Err(rusqlite::Error::InvalidParameterCount(2, 3))
        ));
        drop(st);
        let got: Vec<(Option<String>, Option<i64>, i64)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY rowid")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        let mut want: Vec<(Option<String>, Option<i64>, i64)> = rows
            .iter()
            .map(|&(a, b, c)| (a.map(str::to_string), b, c))
            .collect();
        want.push((Some("y".into()), Some(2), 21));
        want.push((Some("y".into()), Some(2), 21));
        assert_eq!(got, want);
        assert!(
            Rebound::new(conn.prepare_cached("SELECT ?1").expect("p"))
                .repeating_int(2, None)
                .is_err()
        );
    }
}
