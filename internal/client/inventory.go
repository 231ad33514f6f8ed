package client

import (
	"context"
	"net/url"
	"time"

	"github.com/sigil-pki/sigil/internal/inventory"
)

// ReportBatch is how many identities one POST carries; a larger scan is
// sent in several reports, each applied atomically.
const ReportBatch = 1000

// ReportDiscovery sends scan results (split into batches) and returns the
// summed summary.
func (c *Client) ReportDiscovery(ctx context.Context, rep *inventory.Report) (inventory.Summary, error) {
	return c.sendReport(ctx, "/api/v1/discovery/results", rep)
}

// ImportInventory records certificates from other CAs (source imported).
func (c *Client) ImportInventory(ctx context.Context, rep *inventory.Report) (inventory.Summary, error) {
	return c.sendReport(ctx, "/api/v1/inventory/import", rep)
}

func (c *Client) sendReport(ctx context.Context, path string, rep *inventory.Report) (inventory.Summary, error) {
	var total inventory.Summary
	for _, part := range rep.Split(ReportBatch) {
		var s inventory.Summary
		if err := c.Do(ctx, "POST", path, part, &s); err != nil {
			return total, err
		}
		total.Identities += s.Identities
		total.NewIdentities += s.NewIdentities
		total.Locations += s.Locations
		total.NewLocations += s.NewLocations
		total.Issued += s.Issued
		total.Errors += s.Errors
	}
	return total, nil
}

// InventoryPage is one page of GET /api/v1/inventory.
type InventoryPage struct {
	Items []inventory.Identity `json:"items"`
	Next  string               `json:"next,omitempty"`
}

// ListInventory returns one page; q holds the filters (kind, owner, expiring, after, limit…).
func (c *Client) ListInventory(ctx context.Context, q url.Values) (*InventoryPage, error) {
	var p InventoryPage
	err := c.Do(ctx, "GET", "/api/v1/inventory?"+q.Encode(), nil, &p)
	return &p, err
}

// GetInventory returns one identity with its locations.
func (c *Client) GetInventory(ctx context.Context, fingerprint string) (*inventory.Identity, error) {
	var id inventory.Identity
	err := c.Do(ctx, "GET", "/api/v1/inventory/"+url.PathEscape(fingerprint), nil, &id)
	return &id, err
}

// SetInventoryOwner sets the owner and merges labels (empty value: remove).
func (c *Client) SetInventoryOwner(ctx context.Context, fingerprint, owner string, labels map[string]string) (*inventory.Identity, error) {
	var id inventory.Identity
	err := c.Do(ctx, "POST", "/api/v1/inventory/"+url.PathEscape(fingerprint)+"/owner",
		map[string]any{"owner": owner, "labels": labels}, &id)
	return &id, err
}

// ScanSchedule is a scheduled network scan as the API shows it.
type ScanSchedule struct {
	Name        string    `json:"name"`
	Targets     []string  `json:"targets"`
	Ports       []int     `json:"ports,omitempty"`
	SNI         []string  `json:"sni,omitempty"`
	Every       string    `json:"every"`
	Timeout     string    `json:"timeout,omitempty"`
	Concurrency int       `json:"concurrency,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	NextRun     time.Time `json:"next_run,omitzero"`
	LastRun     time.Time `json:"last_run,omitzero"`
	LastResult  string    `json:"last_result,omitempty"`
}

func (c *Client) CreateScanSchedule(ctx context.Context, s *ScanSchedule) (*ScanSchedule, error) {
	req := map[string]any{"name": s.Name, "targets": s.Targets, "ports": s.Ports, "sni": s.SNI, "every": s.Every,
		"timeout": s.Timeout, "concurrency": s.Concurrency}
	var out ScanSchedule
	err := c.Do(ctx, "POST", "/api/v1/discovery/schedules", req, &out)
	return &out, err
}

func (c *Client) ListScanSchedules(ctx context.Context) ([]ScanSchedule, error) {
	var out struct {
		Items []ScanSchedule `json:"items"`
	}
	err := c.Do(ctx, "GET", "/api/v1/discovery/schedules", nil, &out)
	return out.Items, err
}

func (c *Client) DeleteScanSchedule(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/api/v1/discovery/schedules/"+url.PathEscape(name), nil, nil)
}
