package ledger

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a Store when a row does not exist. The engine
// turns it into the right application error (account_not_found, ...).
var ErrNotFound = errors.New("not found")

// ErrKeyExists is wrapped by a Tx's Write when the journal already holds a
// transaction under one of the written transactions' account and
// idempotency key: its unique index refused the batch.
var ErrKeyExists = errors.New("idempotency key already recorded")

// ErrAccountExists is wrapped by a Tx's Write when one of the accounts it
// inserts is already in the store: another process created it after the
// batch locked its accounts. The engine runs the batch again, which then
// finds the account.
var ErrAccountExists = errors.New("account already exists")

// Store persists the ledger. It only loads and persists: every rule lives in
// the engine, so the same rules hold on every store.
//
// Times handed to a Store are UTC and truncated to the microsecond; a Store
// must return them exactly, because they are part of each transaction's hash.
// Reads never take write locks.
type Store interface {
	// Begin opens the write transaction of one batch.
	Begin(ctx context.Context) (Tx, error)

	Account(ctx context.Context, id string) (Account, error)
	// Grants returns all the account's grants, closed ones too, in
	// creation order.
	Grants(ctx context.Context, accountID string) ([]Grant, error)
	// OpenHolds returns the account's open holds.
	OpenHolds(ctx context.Context, accountID string) ([]Hold, error)
	// AccountState returns what a balance is made of, the account, its
	// grants that are not closed and have credits remaining and its open
	// holds, read from one snapshot of the database: a hold placed or
	// settled meanwhile shows in its grants and its holds both, or in
	// neither. ErrNotFound when the account does not exist.
	AccountState(ctx context.Context, accountID string) (AccountState, error)
	Grant(ctx context.Context, id string) (Grant, error)
	Hold(ctx context.Context, id string) (Hold, error)
	Charge(ctx context.Context, id string) (Charge, error)
	// Transactions returns an account's journal transactions newest first.
	Transactions(ctx context.Context, q HistoryQuery) ([]Transaction, error)

	// DueGrants returns up to limit grants, of any account, that are not
	// closed and whose expiry is at or before now, soonest first.
	DueGrants(ctx context.Context, now time.Time, limit int) ([]Grant, error)
	// DueHolds returns up to limit open holds whose time-to-live ended at or
	// before now, soonest first.
	DueHolds(ctx context.Context, now time.Time, limit int) ([]Hold, error)

	// AccountIDs returns up to limit account ids greater than after, sorted.
	AccountIDs(ctx context.Context, after string, limit int) ([]string, error)
	// Journal calls fn for each journal transaction of the account in
	// sequence order.
	Journal(ctx context.Context, accountID string, fn func(*Transaction) error) error

	Close() error
}

// AccountState is an account with its live grants, in creation order, and
// its open holds, oldest first, as they were at one moment.
type AccountState struct {
	Account Account
	Grants  []Grant
	Holds   []Hold
}

// Tx is the write transaction of one batch. The committer calls LockAccounts
// first, then any loads, then Write once, then Commit.
type Tx interface {
	// LockAccounts locks the accounts, given in ascending id order, for the
	// rest of the transaction (SELECT ... FOR UPDATE on PostgreSQL) and
	// returns those that exist.
	LockAccounts(ctx context.Context, ids []string) ([]Account, error)
	// LoadGrants returns the open grants with credits remaining of the
	// accounts, and in addition the grants named by id whatever their state.
	LoadGrants(ctx context.Context, accountIDs, grantIDs []string) ([]Grant, error)
	LoadHolds(ctx context.Context, ids []string) ([]Hold, error)
	LoadCharges(ctx context.Context, ids []string) ([]Charge, error)
	// LoadKeyed returns the transactions recorded under the idempotency keys.
	LoadKeyed(ctx context.Context, keys []TxKey) ([]Transaction, error)
	// Write persists everything a batch produced, preferably in a few
	// set-based statements. A Write that fails may leave nothing of the
	// transaction to keep: the batch is rolled back, and Commit fails.
	// Inserting an account that exists fails with ErrAccountExists, and a
	// key already in the journal with ErrKeyExists.
	Write(ctx context.Context, w *Writes) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// BulkReader is a Store that reads the state of many accounts with one
// query per table, from one snapshot of the database. Verify then checks
// verifyBulkAccounts accounts with four queries instead of four per
// account, and a ledger that is being written cannot show it a head, a
// journal and grants from different moments.
type BulkReader interface {
	// ReadAccounts calls fn with reads that all see the database as it
	// was at one moment.
	ReadAccounts(ctx context.Context, fn func(AccountsReader) error) error
}

// AccountsReader reads many accounts at once; see BulkReader.
type AccountsReader interface {
	// AccountsOf returns those of the accounts ids that exist, in any
	// order.
	AccountsOf(ctx context.Context, ids []string) ([]Account, error)
	// JournalOf calls fn with every transaction of the accounts ids, each
	// account's in sequence order; accounts may interleave.
	JournalOf(ctx context.Context, ids []string, fn func(*Transaction) error) error
	// GrantsOf returns every grant of the accounts ids, closed ones too,
	// each account's in creation order.
	GrantsOf(ctx context.Context, ids []string) ([]Grant, error)
	// LiveGrantsOf returns the live grants (not closed, credits remaining)
	// of the accounts ids, and those of grantIDs that are not live, each
	// once, in any order.
	LiveGrantsOf(ctx context.Context, ids, grantIDs []string) ([]Grant, error)
	// OpenHoldsOf returns the open holds of the accounts ids, each
	// account's oldest first.
	OpenHoldsOf(ctx context.Context, ids []string) ([]Hold, error)
}

// Loader is a Tx that can lock a batch's accounts and make all of the
// batch's reads in one round trip, in this order: LockAccounts(Accounts),
// LoadHolds(Holds), LoadCharges(Charges), LoadGrants(Accounts, Grants),
// LoadKeyed(Keys); an empty list skips its read, except that the grants of
// Accounts are always read. The engine reads afterwards, with LoadGrants,
// only the grants named by the loaded holds and charges that Load did not
// return.
type Loader interface {
	Load(ctx context.Context, r LoadRequest) (Loaded, error)
}

// LoadRequest is what a batch reads once its accounts are locked. Accounts
// are in ascending order, without duplicates, as LockAccounts takes them.
type LoadRequest struct {
	Accounts []string
	Holds    []string
	Charges  []string
	// Grants are read whatever their state, besides the live grants of
	// Accounts.
	Grants []string
	Keys   []TxKey
}

// Loaded is what a LoadRequest read; each part is as the Tx method that
// reads it returns it.
type Loaded struct {
	Accounts []Account
	Holds    []Hold
	Charges  []Charge
	Grants   []Grant
	Keyed    []Transaction
}

// TxKey names a transaction by its account and idempotency key; keys are
// scoped to the account.
type TxKey struct {
	AccountID string
	Key       string
}

// Writes is everything one batch persists. "New" slices are inserts; the
// others are updates of rows loaded in the same Tx.
type Writes struct {
	// NewAccounts are accounts the batch created, with their head as the
	// batch left it; they are not also in Accounts.
	NewAccounts  []Account
	Accounts     []Account // new head: Seq and Hash
	NewGrants    []Grant
	Grants       []Grant // Remaining and Closed changed; Closed only ever goes from false to true
	NewHolds     []Hold
	Holds        []Hold // Status, SettledAt, Captured, ChargeID changed
	NewCharges   []Charge
	Charges      []Charge // Refunded and Allocations changed
	Transactions []Transaction
}

// Empty reports whether there is nothing to write.
func (w *Writes) Empty() bool {
	return len(w.NewAccounts)+len(w.Accounts)+len(w.NewGrants)+len(w.Grants)+len(w.NewHolds)+len(w.Holds)+
		len(w.NewCharges)+len(w.Charges)+len(w.Transactions) == 0
}

// HistoryQuery selects an account's journal transactions.
type HistoryQuery struct {
	AccountID string
	// Types keeps only these types when not empty.
	Types []TxType
	// Since and Until bound CreatedAt: Since <= t < Until (zero = open).
	Since, Until time.Time
	// BeforeSeq keeps transactions with Seq < BeforeSeq when > 0 (the cursor).
	BeforeSeq int64
	Limit     int
}
