//! A statement run once per row of a batch, its parameters bound one by one, and those that
//! repeat from row to row (the destination, the audience, a status, the batch's clock) bound
//! only when their value changes. SQLite keeps a statement's bindings from one run to the
//! next, and each bind costs a call through rusqlite (a text is copied by SQLite, about 280
//! instructions): part (c) bound 27 parameters per accepted event and 13 per settled outcome.
//!
//! A `Rebound` lives for one batch: its statement comes from the connection's cache with no
//! bindings, and every parameter is bound on its first run.

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
    /// [`Rebound::same_int`] and [`Rebound::same_text`].
    last: Vec<Option<Last>>,
}

impl<'c> Rebound<'c> {
    pub(super) fn new(stmt: CachedStatement<'c>) -> Self {
        let last = (0..stmt.parameter_count()).map(|_| None).collect();
        Self { stmt, last }
    }

    /// Binds `value` to parameter `i` (from 1), every time.
    pub(super) fn bind<T: rusqlite::ToSql>(&mut self, i: usize, value: T) -> rusqlite::Result<()> {
        if let Some(last) = self.last.get_mut(i.wrapping_sub(1)) {
            *last = None;
        }
        self.stmt.raw_bind_parameter(i, value)
    }

    /// Binds `value` to parameter `i` (from 1) unless it is bound already.
    pub(super) fn same_int(&mut self, i: usize, value: Option<i64>) -> rusqlite::Result<()> {
        let slot = self.slot(i)?;
        if *slot == Some(Last::Int(value)) {
            return Ok(());
        }
        *slot = None;
        self.stmt.raw_bind_parameter(i, value)?;
        self.last[i - 1] = Some(Last::Int(value));
        Ok(())
    }

    /// Binds `value` to parameter `i` (from 1) unless it is bound already.
    pub(super) fn same_text(&mut self, i: usize, value: Option<&str>) -> rusqlite::Result<()> {
        let slot = self.slot(i)?;
        if let Some(Last::Text(last)) = slot
            && last.as_deref() == value
        {
            return Ok(());
        }
        *slot = None;
        self.stmt.raw_bind_parameter(i, value)?;
        self.last[i - 1] = Some(Last::Text(value.map(str::to_string)));
        Ok(())
    }

    /// Runs the statement with what is bound: the rows it changed.
    pub(super) fn execute(&mut self) -> rusqlite::Result<usize> {
        self.stmt.raw_execute()
    }

    fn slot(&mut self, i: usize) -> rusqlite::Result<&mut Option<Last>> {
        self.last
            .get_mut(i.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, 0))
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A repeating parameter keeps its value across runs, and takes a new one (a null, a
    /// number, a text) as soon as it changes; a parameter bound every time is never skipped,
    /// also after the same value was bound to it as a repeating one.
    #[test]
    fn repeating_parameters_are_bound_when_they_change() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (a, b, c)")
            .expect("table");
        let mut st = Rebound::new(
            conn.prepare_cached("INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)")
                .expect("prepare"),
        );
        let rows: [(Option<&str>, Option<i64>, i64); 6] = [
            (Some("x"), Some(1), 10),
            (Some("x"), Some(1), 11),
            (None, Some(1), 12),
            (Some("y"), None, 13),
            (Some(""), None, 14),
            (Some("y"), Some(2), 15),
        ];
        for (a, b, c) in rows {
            st.same_text(1, a).expect("a");
            st.same_int(2, b).expect("b");
            st.bind(3, c).expect("c");
            assert_eq!(st.execute().expect("insert"), 1);
        }
        // Bound every time after a repeating bind of the same value: still bound.
        st.same_int(3, Some(20)).expect("c");
        st.bind(3, 21).expect("c");
        st.same_int(3, Some(21)).expect("c");
        st.execute().expect("insert");
        st.bind(3, 22).expect("c");
        st.same_int(3, Some(21)).expect("c");
        st.execute().expect("insert");
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
                .same_int(2, None)
                .is_err()
        );
    }
}
