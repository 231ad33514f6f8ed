package policy

import (
	"net"
	"testing"
)

func BenchmarkEvaluate(b *testing.B) {
	p := webProfile()
	p.RequiredLabels = []string{"env"}
	r := &Request{
		CommonName:  "api.prod.internal",
		DNSNames:    []string{"api.prod.internal", "api.a.test", "localhost"},
		IPAddresses: []net.IP{net.ParseIP("10.1.2.3")},
		KeyType:     "ecdsa-p256",
		Labels:      map[string]string{"env": "prod"},
		Requester:   Requester{Name: "ci", Role: "operator"},
	}
	run := func(b *testing.B, c *Compiled) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Evaluate(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, mustCompile(b, p)) })
	p.Rule = `size(request.dns) <= 10 && request.labels.env == "prod"`
	b.Run("cel", func(b *testing.B) { run(b, mustCompile(b, p)) })
}
