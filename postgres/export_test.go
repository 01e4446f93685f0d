package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// SetJournalCopyRowsMin makes s write the journal of every batch with at
// least n rows with COPY, so that tests reach that path with small batches.
func SetJournalCopyRowsMin(s *Store, n int) { s.copyRowsMin = n }

// Pool returns the store's connection pool.
func Pool(s *Store) *pgxpool.Pool { return s.pool }

// BatchSettings is the statement that gives a batch's transaction its
// planner settings.
const BatchSettings = batchSettings
