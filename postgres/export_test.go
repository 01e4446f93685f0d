package postgres

// SetJournalCopyRowsMin makes s write the journal of every batch with at
// least n rows with COPY, so that tests reach that path with small batches.
func SetJournalCopyRowsMin(s *Store, n int) { s.copyRowsMin = n }
