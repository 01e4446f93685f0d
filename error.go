// Package scrip holds the error vocabulary shared by every scrip package.
//
// Application errors carry a stable machine code and a human message; the
// HTTP layer maps codes to statuses in one table. Anything that is not an
// *Error is internal.
package scrip

import (
	"errors"
	"fmt"
)

// Stable error codes. Clients match on these; never rename one.
const (
	EInvalid             = "invalid"
	EInvalidAmount       = "invalid_amount"
	EInvalidParam        = "invalid_param"
	ENotFound            = "not_found"
	EAccountNotFound     = "account_not_found"
	EActionNotFound      = "action_not_found"
	EHoldNotFound        = "hold_not_found"
	EChargeNotFound      = "charge_not_found"
	EGrantNotFound       = "grant_not_found"
	EHoldAlreadySettled  = "hold_already_settled"
	EHoldExpired         = "hold_expired"
	EInsufficientCredits = "insufficient_credits"
	EIdempotencyConflict = "idempotency_conflict"
	EPlanRequired        = "plan_required"
	EQuotaExceeded       = "quota_exceeded"
	EQueueFull           = "queue_full"
	EUnavailable         = "unavailable"
	EConflict            = "conflict"
	EUnauthorized        = "unauthorized"
	EForbidden           = "forbidden"
	ERateLimited         = "rate_limited"
	EInternal            = "internal"
	EPlanNotFound        = "plan_not_found"
)

// Error is an application error with a stable code.
type Error struct {
	Code    string
	Message string
	// Field names the offending input, when there is one.
	Field string
	// Details carries structured context clients rely on, such as
	// "required" and "available" for insufficient_credits.
	Details map[string]any
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain and a
// generic text for internal errors, which must not leak details to clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
