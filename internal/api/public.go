package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
)

// PublicHandler returns the plain-HTTP handler: CRLs, OCSP, CA certificates
// and health. Relying parties fetch these without TLS (RFC 5280 and 6960
// expect plain HTTP: the objects are signed).
func (s *Server) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	s.health(mux)
	mux.HandleFunc("GET /crl/{file}", s.serveCRL)
	mux.HandleFunc("GET /ca/{file}", s.serveCACert)
	mux.HandleFunc("GET /root.pem", s.serveRootPEM)
	mux.HandleFunc("POST /ocsp", s.ocspPost)
	mux.HandleFunc("GET /ocsp/{req...}", s.ocspGet)
	return recoverer(s.Log, mux)
}

func (s *Server) serveCRL(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
	if !ok {
		writeProblem(w, s.Log, fail.New(fail.NotFound, "no such CRL"))
		return
	}
	crl, err := s.RA.CRL(r.Context(), id)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Last-Modified", crl.ThisUpdate.UTC().Format(http.TimeFormat))
	// Caches may keep it only briefly: a new CRL follows each revocation.
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(crl.DER)
}

func (s *Server) serveCACert(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	id, isPEM := strings.CutSuffix(file, ".pem")
	if !isPEM {
		id = strings.TrimSuffix(file, ".crt")
	}
	iss, err := s.RA.CA().Issuer(id)
	if err != nil || id == "" {
		writeProblem(w, s.Log, fail.New(fail.NotFound, "issuer %q does not exist", id))
		return
	}
	if isPEM {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(ca.PEM(iss.Cert.Raw))
		return
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	_, _ = w.Write(iss.Cert.Raw)
}

func (s *Server) serveRootPEM(w http.ResponseWriter, r *http.Request) {
	for _, i := range s.RA.CA().Issuers() {
		if string(i.Cert.RawIssuer) == string(i.Cert.RawSubject) && i.Cert.CheckSignatureFrom(i.Cert) == nil {
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(ca.PEM(i.Cert.Raw))
			return
		}
	}
	writeProblem(w, s.Log, fail.New(fail.NotFound, "no root certificate"))
}

func (s *Server) ocspPost(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxOCSPBody)
	if err != nil {
		writeOCSPError(w, ocsp.MalformedRequestErrorResponse)
		return
	}
	s.answerOCSP(w, r, body)
}

// ocspGet handles RFC 6960 appendix A.1 GET requests: the base64 DER request
// is the last path segment, possibly URL-escaped.
func (s *Server) ocspGet(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("req")
	if unesc, err := url.PathUnescape(raw); err == nil {
		raw = unesc
	}
	if len(raw) > maxOCSPBody {
		writeOCSPError(w, ocsp.MalformedRequestErrorResponse)
		return
	}
	der, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		writeOCSPError(w, ocsp.MalformedRequestErrorResponse)
		return
	}
	s.answerOCSP(w, r, der)
}

func (s *Server) answerOCSP(w http.ResponseWriter, r *http.Request, der []byte) {
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		writeOCSPError(w, ocsp.MalformedRequestErrorResponse)
		return
	}
	resp, err := s.RA.OCSP(r.Context(), req, ca.OCSPNonce(der))
	switch {
	case errors.Is(err, ca.ErrOCSPNotOurs):
		writeOCSPError(w, ocsp.UnauthorizedErrorResponse)
		return
	case err != nil:
		s.Log.Error("answering OCSP", "err", err)
		writeOCSPError(w, ocsp.TryLaterErrorResponse)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(resp)
}

func writeOCSPError(w http.ResponseWriter, resp []byte) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}
