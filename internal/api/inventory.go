package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// maxReportBody bounds one discovery report: MaxIdentities certificates of
// a few KiB each, base64-encoded, plus their locations.
const maxReportBody = 64 << 20

func (s *Server) inventoryRoutes(a func(string, http.HandlerFunc)) {
	a("POST /api/v1/discovery/results", s.reportDiscovery)
	a("GET /api/v1/discovery/schedules", s.listScanSchedules)
	a("POST /api/v1/discovery/schedules", s.putScanSchedule)
	a("DELETE /api/v1/discovery/schedules/{name}", s.deleteScanSchedule)
	a("GET /api/v1/inventory", s.listInventory)
	a("POST /api/v1/inventory/import", s.importInventory)
	a("GET /api/v1/inventory/key-reuse", s.keyReuse)
	a("GET /api/v1/inventory/{fingerprint}", s.showInventory)
	a("POST /api/v1/inventory/{fingerprint}/owner", s.setInventoryOwner)
}

func (s *Server) reportDiscovery(w http.ResponseWriter, r *http.Request) {
	var rep inventory.Report
	if err := decodeJSON(w, r, maxReportBody, &rep); err != nil {
		s.refuse(w, r, auth.InventoryWrite, "", err)
		return
	}
	sum, err := s.RA.ReportDiscovery(r.Context(), caller(r), &rep)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) importInventory(w http.ResponseWriter, r *http.Request) {
	var rep inventory.Report
	if err := decodeJSON(w, r, maxReportBody, &rep); err != nil {
		s.refuse(w, r, auth.InventoryWrite, "", err)
		return
	}
	sum, err := s.RA.ImportInventory(r.Context(), caller(r), &rep)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// inventoryFilter reads the query of GET /api/v1/inventory.
func (s *Server) inventoryFilter(r *http.Request) (store.InventoryFilter, error) {
	q := r.URL.Query()
	f := store.InventoryFilter{
		Kind: store.InventoryKind(q.Get("kind")), Source: store.InventorySource(q.Get("source")),
		Owner: q.Get("owner"), Label: q.Get("label"), Issuer: q.Get("issuer"), KeyAlgorithm: q.Get("key_algorithm"),
		Location: q.Get("location"), After: q.Get("after"),
	}
	switch f.Kind {
	case "", store.KindX509, store.KindSSHKey, store.KindSSHCert, store.KindPrivateKey, store.KindSecret:
	default:
		return f, fail.New(fail.Malformed, "unknown kind %q (x509, ssh-key, ssh-cert, private-key, secret)", f.Kind)
	}
	switch f.Source {
	case "", store.SourceIssued, store.SourceDiscovered, store.SourceImported:
	default:
		return f, fail.New(fail.Malformed, "unknown source %q (issued, discovered, imported)", f.Source)
	}
	if v := q.Get("spki"); v != "" {
		if f.SPKISHA256 = inventory.NormalizeFingerprint(v); f.SPKISHA256 == "" {
			return f, fail.New(fail.Malformed, "invalid spki %q", v)
		}
	}
	boolean := func(name string) (bool, error) {
		v := q.Get(name)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fail.New(fail.Malformed, "invalid %s %q: want true or false", name, v)
		}
		return b, nil
	}
	var err error
	if f.IssuerUnknown, err = boolean("issuer_unknown"); err != nil {
		return f, err
	}
	duration := func(name string) (time.Duration, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		d, err := parseDuration(v)
		if err != nil || d <= 0 {
			return 0, fail.New(fail.Malformed, "invalid %s %q: want a duration such as 30d or 72h", name, v)
		}
		return d, nil
	}
	now := s.Now()
	if d, err := duration("expiring"); err != nil {
		return f, err
	} else if d > 0 {
		// Expiring: still valid now and ending within d.
		f.NotAfterBefore, f.NotAfterAfter = now.Add(d), now
	}
	if expired, err := boolean("expired"); err != nil {
		return f, err
	} else if expired {
		f.NotAfterBefore, f.NotAfterAfter = now, time.Time{}
	}
	if d, err := duration("seen_within"); err != nil {
		return f, err
	} else if d > 0 {
		f.SeenSince = now.Add(-d)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > ra.MaxInventoryPage {
			return f, fail.New(fail.Malformed, "invalid limit %q (0 to %d)", l, ra.MaxInventoryPage)
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Server) listInventory(w http.ResponseWriter, r *http.Request) {
	f, err := s.inventoryFilter(r)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	page, err := s.RA.Inventory(r.Context(), caller(r), f)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) showInventory(w http.ResponseWriter, r *http.Request) {
	id, err := s.RA.InventoryIdentity(r.Context(), caller(r), r.PathValue("fingerprint"))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, id)
}

func (s *Server) keyReuse(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeProblem(w, s.Log, fail.New(fail.Malformed, "invalid limit %q", l))
			return
		}
		limit = n
	}
	ks, err := s.RA.InventoryKeyReuse(r.Context(), caller(r), limit)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	if ks == nil {
		ks = []*store.KeyReuse{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ks, "count": len(ks)})
}

// OwnerRequest is the body of POST /api/v1/inventory/{fingerprint}/owner.
type OwnerRequest struct {
	Owner  string            `json:"owner"`
	Labels map[string]string `json:"labels,omitempty"` // merged; an empty value removes a label
}

func (s *Server) setInventoryOwner(w http.ResponseWriter, r *http.Request) {
	var req OwnerRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.InventoryWrite, r.PathValue("fingerprint"), err)
		return
	}
	if err := s.RA.SetInventoryOwner(r.Context(), caller(r), r.PathValue("fingerprint"), req.Owner, req.Labels); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	s.showInventory(w, r)
}

// ScheduleRequest is the body of POST /api/v1/discovery/schedules.
type ScheduleRequest struct {
	Name        string   `json:"name"`
	Targets     []string `json:"targets"`
	Ports       []int    `json:"ports,omitempty"`
	SNI         []string `json:"sni,omitempty"`
	Every       string   `json:"every"`
	Timeout     string   `json:"timeout,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
}

// ScheduleView is a scan schedule as the API shows it.
type ScheduleView struct {
	Name        string    `json:"name"`
	Targets     []string  `json:"targets"`
	Ports       []int     `json:"ports,omitempty"`
	SNI         []string  `json:"sni,omitempty"`
	Every       string    `json:"every"`
	Timeout     string    `json:"timeout,omitempty"`
	Concurrency int       `json:"concurrency,omitempty"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	NextRun     time.Time `json:"next_run,omitzero"`
	LastRun     time.Time `json:"last_run,omitzero"`
	LastResult  string    `json:"last_result,omitempty"`
}

func scheduleView(sc *store.ScanSchedule) ScheduleView {
	v := ScheduleView{Name: sc.Name, Targets: sc.Targets, Ports: sc.Ports, SNI: sc.SNI, Every: sc.Every.String(),
		Concurrency: sc.Concurrency, CreatedBy: sc.CreatedBy, CreatedAt: sc.CreatedAt, NextRun: sc.NextRun,
		LastRun: sc.LastRun, LastResult: sc.LastResult}
	if sc.Timeout > 0 {
		v.Timeout = sc.Timeout.String()
	}
	return v
}

func (s *Server) putScanSchedule(w http.ResponseWriter, r *http.Request) {
	var req ScheduleRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.InventoryWrite, "", err)
		return
	}
	every, err := parseDuration(req.Every)
	if err != nil {
		s.refuse(w, r, auth.InventoryWrite, req.Name, fail.New(fail.Malformed, "invalid every %q: want a duration such as 6h or 1d", req.Every))
		return
	}
	var timeout time.Duration
	if req.Timeout != "" {
		if timeout, err = parseDuration(req.Timeout); err != nil {
			s.refuse(w, r, auth.InventoryWrite, req.Name, fail.New(fail.Malformed, "invalid timeout %q", req.Timeout))
			return
		}
	}
	sc, err := s.RA.PutScanSchedule(r.Context(), caller(r), ra.ScanScheduleRequest{Name: req.Name, Targets: req.Targets,
		Ports: req.Ports, SNI: req.SNI, Every: every, Timeout: timeout, Concurrency: req.Concurrency})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, scheduleView(sc))
}

func (s *Server) listScanSchedules(w http.ResponseWriter, r *http.Request) {
	ss, err := s.RA.ScanSchedules(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]ScheduleView, len(ss))
	for i, sc := range ss {
		out[i] = scheduleView(sc)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (s *Server) deleteScanSchedule(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.DeleteScanSchedule(r.Context(), caller(r), r.PathValue("name")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
