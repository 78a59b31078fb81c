//! Keyset pages: every list reads one row beyond the page, so it can tell
//! whether another page follows without a count.

/// The largest page any list returns.
pub const MAX_PAGE: u32 = 500;

/// The page size `limit` asks for, within 1..=[`MAX_PAGE`].
pub(crate) fn page_size(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Rows to read for a page of `size`: the page and one look-ahead row.
pub(crate) fn rows_to_read(size: u32) -> i64 {
    i64::from(size) + 1
}

/// Drops the look-ahead row from `rows`; returns the cursor of the next
/// page (the last kept row's key) when the look-ahead row was there.
pub(crate) fn cut<T, K>(rows: &mut Vec<T>, size: u32, key: impl Fn(&T) -> K) -> Option<K> {
    if rows.len() > size as usize {
        rows.truncate(size as usize);
        rows.last().map(key)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_look_ahead_row_survives_the_largest_page() {
        let size = page_size(10_000);
        assert_eq!(size, MAX_PAGE);
        let mut rows: Vec<u32> = (0..u32::try_from(rows_to_read(size)).unwrap()).collect();
        assert_eq!(cut(&mut rows, size, |r| *r), Some(MAX_PAGE - 1));
        assert_eq!(rows.len(), MAX_PAGE as usize);
        let mut last: Vec<u32> = (0..MAX_PAGE).collect();
        assert_eq!(cut(&mut last, size, |r| *r), None);
    }
}
