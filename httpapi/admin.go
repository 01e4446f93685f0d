package httpapi

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/scriphq/scrip/ledger"
)

// readyTimeout bounds the store probe of /readyz.
const readyTimeout = 2 * time.Second

//go:embed openapi.json
var openapiJSON []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiJSON)
	return nil
}

type healthJSON struct {
	Status  string            `json:"status"`
	Checks  map[string]string `json:"checks,omitempty"`
	Catalog string            `json:"catalog_version,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, healthJSON{Status: "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	out := healthJSON{Status: "ok", Checks: map[string]string{"store": "ok", "catalog": "ok"}}
	status := http.StatusOK
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if _, err := s.engine.Store().AccountIDs(ctx, "", 1); err != nil {
		out.Checks["store"] = "unreachable"
		out.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	if c := s.cfg.Catalog.Current(); c == nil {
		out.Checks["catalog"] = "not loaded"
		out.Status, status = "unavailable", http.StatusServiceUnavailable
	} else {
		out.Catalog = c.Version
	}
	writeJSON(w, status, out)
	return nil
}

type verifyJSON struct {
	Object string `json:"object"`
	OK     bool   `json:"ok"`
	ledger.VerifyReport
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.engine.Verify(r.Context())
	if err != nil {
		return err
	}
	if rep.Problems == nil {
		rep.Problems = []string{}
	}
	writeJSON(w, http.StatusOK, verifyJSON{Object: "verify_report", OK: rep.OK(), VerifyReport: rep})
	return nil
}
