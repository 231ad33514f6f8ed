package report

import (
	"fmt"
	"html/template"
	"io"
	"time"
)

// HTML writes r as one self-contained page: inline CSS, an inline SVG
// timeline, no scripts, fonts or images from elsewhere, so it can be mailed
// or archived and opens offline.
func HTML(w io.Writer, r *Report) error {
	return page.Execute(w, view{Report: r, Chart: chart(r.Timeline)})
}

type view struct {
	*Report
	Chart template.HTML
}

// chart renders the weekly expiry counts as an SVG bar chart. All values are
// numbers or dates formatted here, so nothing from the store reaches the SVG
// unescaped.
func chart(weeks []WeekBucket) template.HTML {
	const w, h, left, bottom, top = 760, 220, 40, 40, 20
	maxN := 1
	for _, b := range weeks {
		maxN = max(maxN, b.Count)
	}
	n := max(len(weeks), 1)
	bw := float64(w-left-10) / float64(n)
	s := fmt.Sprintf(`<svg viewBox="0 0 %d %d" width="100%%" role="img" aria-label="Certificates expiring per week">`, w, h)
	s += fmt.Sprintf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, h-bottom, w-10, h-bottom)
	s += fmt.Sprintf(`<text x="4" y="%d" font-size="11" fill="#555">%d</text><text x="4" y="%d" font-size="11" fill="#555">0</text>`, top+4, maxN, h-bottom)
	for i, b := range weeks {
		bh := float64(h-bottom-top) * float64(b.Count) / float64(maxN)
		x := float64(left) + float64(i)*bw + 2
		color := "#4a7fc1"
		if i < 5 {
			color = "#d9822b" // within ~30 days
		}
		if i < 1 {
			color = "#c23030"
		}
		s += fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>week of %s: %d</title></rect>`,
			x, float64(h-bottom)-bh, bw-4, bh, color, b.Start.Format("2006-01-02"), b.Count)
		if b.Count > 0 {
			s += fmt.Sprintf(`<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#222">%d</text>`, x+(bw-4)/2, float64(h-bottom)-bh-3, b.Count)
		}
		if i%2 == 0 {
			s += fmt.Sprintf(`<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#555">%s</text>`, x+(bw-4)/2, h-bottom+14, b.Start.Format("Jan 2"))
		}
	}
	s += `</svg>`
	return template.HTML(s) //nolint:gosec // built above from numbers and dates only
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"day":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"or": func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	},
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sigil posture report {{day .GeneratedAt}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d1d1f; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
.muted { color: #666; font-size: .9rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.5rem; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f6f6f6; }
.sev { font-weight: 600; padding: 0 .4rem; border-radius: 3px; }
.sev-critical { background: #c23030; color: #fff; } .sev-high { background: #d9822b; color: #fff; }
.sev-medium { background: #f2c94c; } .sev-low { background: #dbe9f6; } .sev-info { background: #eee; }
.pass { color: #1e7b34; font-weight: 600; } .fail { color: #c23030; font-weight: 600; }
code { font-size: .85em; }
</style>
</head>
<body>
<h1>Sigil posture report</h1>
<p class="muted">Generated {{date .GeneratedAt}}. Findings are those open at that time; the expiry calendar covers the next 90 days.</p>

<div class="cards">
<div class="card"><b>{{index .Summary.FindingsBySeverity "critical"}}</b>critical findings</div>
<div class="card"><b>{{index .Summary.FindingsBySeverity "high"}}</b>high findings</div>
<div class="card"><b>{{index .Summary.FindingsBySeverity "medium"}}</b>medium findings</div>
<div class="card"><b>{{index .Summary.FindingsBySeverity "low"}}</b>low findings</div>
<div class="card"><b>{{.Summary.ExpiringWithin30d}}</b>expiring within 30 days</div>
<div class="card"><b>{{index .Summary.Certificates "issued"}}</b>issued certificates</div>
<div class="card"><b>{{index .Summary.Certificates "revoked"}}</b>revoked certificates</div>
</div>

<h2>Expiry timeline</h2>
<p class="muted">Certificates expiring per week (red: this week, orange: within about 30 days).</p>
{{.Chart}}

<h2>Compliance checks</h2>
<table>
<tr><th>Check</th><th>Reference</th><th>Rules</th><th>Result</th></tr>
{{range .Compliance}}<tr><td>{{.Title}}</td><td>{{.Reference}}</td><td>{{range $i, $r := .Rules}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}</td>
<td>{{if .Pass}}<span class="pass">pass</span>{{else}}<span class="fail">fail ({{.Failures}})</span>{{end}}</td></tr>
{{end}}</table>

<h2>Expiring soon</h2>
{{if .Expiring}}<table>
<tr><th>Expires</th><th>Days</th><th>Name</th><th>Owner</th><th>Source</th><th>Serial / fingerprint</th></tr>
{{range .Expiring}}<tr><td>{{day .NotAfter}}</td><td>{{.DaysLeft}}</td><td>{{.Name}}</td><td>{{or .Owner "—"}}</td><td>{{.Source}}</td><td><code>{{or .Serial (short .Fingerprint)}}</code></td></tr>
{{end}}</table>{{else}}<p>Nothing expires in the next 90 days.</p>{{end}}

<h2>Owners</h2>
{{if .Owners}}<table>
<tr><th>Owner</th><th>Live certificates</th><th>Open findings</th><th>High or critical</th></tr>
{{range .Owners}}<tr><td>{{or .Owner "(no owner)"}}</td><td>{{.Certificates}}</td><td>{{.Findings}}</td><td>{{.HighOrAbove}}</td></tr>
{{end}}</table>{{else}}<p>No certificates.</p>{{end}}

<h2>Open findings</h2>
{{if .Findings}}<table>
<tr><th>Severity</th><th>Finding</th><th>Subject</th><th>Where</th><th>Details</th><th>Since</th></tr>
{{range .Findings}}<tr><td><span class="sev sev-{{.Severity}}">{{.Severity}}</span></td><td>{{.Title}}<br><code>{{.Rule}}</code></td>
<td><code>{{or .Serial (short .Subject)}}</code></td><td>{{or .Location "—"}}</td><td>{{.Message}}</td><td>{{day .FirstSeen}}</td></tr>
{{end}}</table>{{else}}<p>No open findings.</p>{{end}}
{{if .Truncated}}<p class="muted">Tables were cut at 1000 rows: {{range $k, $v := .Truncated}}{{$k}} (+{{$v}}) {{end}}— use <code>sigil report --format json</code> or <code>sigil findings list</code> for everything.</p>{{end}}

<h2>Rules</h2>
<table>
<tr><th>Rule</th><th>Default severity</th><th>What it finds</th><th>Remediation</th></tr>
{{range .Rules}}<tr><td><code>{{.ID}}</code><br>{{.Title}}</td><td><span class="sev sev-{{.Severity}}">{{.Severity}}</span></td><td>{{.Description}}</td><td>{{.Remediation}}</td></tr>
{{end}}</table>
</body>
</html>
`))
