package httpapi

import (
	"net/http"
	"testing"

	"github.com/scriphq/scrip"
)

// TestBillingStatuses pins the statuses of the codes billing returns.
func TestBillingStatuses(t *testing.T) {
	for code, want := range map[string]int{
		scrip.EPlanNotFound:        http.StatusNotFound,
		scrip.ENotFound:            http.StatusNotFound,
		scrip.EConflict:            http.StatusConflict,
		scrip.EPlanRequired:        http.StatusForbidden,
		scrip.EQuotaExceeded:       http.StatusForbidden,
		scrip.EIdempotencyConflict: http.StatusConflict,
		scrip.EInvalid:             http.StatusBadRequest,
		eBillingNotConfigured:      http.StatusServiceUnavailable,
	} {
		if got := statusOf(scrip.Errorf(code, "x")); got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
	}
}
