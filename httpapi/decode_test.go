package httpapi

import (
	"testing"

	"github.com/scriphq/scrip"
)

// FuzzDecode feeds arbitrary bodies to the request decoder: it must never
// panic, and every failure must be a coded client error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{}`, ``, `{"action":"upscale","params":{"duration":8}}`, `{"credits":"1.5"}`, `{"credits":1e400}`,
		`{"action":`, `[1]`, `{"x":1}`, `{"ttl_seconds":-1}`, `{"metadata":{"a":"b"}} {}`, `null`, `"s"`,
		`{"credits":"0.0000001"}`, `{"params":{"a":{"b":[1,2,{"c":null}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req holdRequest
		err := decodeBytes(body, &req)
		if err == nil {
			return
		}
		code := scrip.ErrorCode(err)
		if statusOf(err) != 400 || code == scrip.EInternal {
			t.Fatalf("decode %q: %v (code %q, status %d)", body, err, code, statusOf(err))
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body, code, field string
	}{
		{`{"action":1}`, scrip.EInvalidParam, "action"},
		{`{"credits":"abc"}`, scrip.EInvalidAmount, "credits"},
		{`{"nope":1}`, eUnknownField, "nope"},
		{`{"ttl_seconds":"x"}`, scrip.EInvalidParam, "ttl_seconds"},
		{`{`, eMalformedJSON, ""},
		{`{} x`, eMalformedJSON, ""},
	}
	for _, tt := range tests {
		var req holdRequest
		err := decodeBytes([]byte(tt.body), &req)
		var e *scrip.Error
		if !asError(err, &e) || e.Code != tt.code || e.Field != tt.field {
			t.Errorf("decode %s = %v, want code %s field %q", tt.body, err, tt.code, tt.field)
		}
	}
}

func asError(err error, e **scrip.Error) bool {
	x, ok := err.(*scrip.Error)
	*e = x
	return ok
}
