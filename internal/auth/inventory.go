package auth

import "github.com/sigil-pki/sigil/internal/identity"

// Inventory actions (issue 4). Read: identities and their locations. Write:
// report scan results, import certificates, set owners and labels, manage
// scheduled scans.
const (
	InventoryRead  Action = "inventory.read"
	InventoryWrite Action = "inventory.write"
)

// Kept in their own file so the inventory's grants do not touch the shared
// table: operators run scans and own what they find; auditors read.
func init() {
	grants[identity.RoleOperator][InventoryRead] = true
	grants[identity.RoleOperator][InventoryWrite] = true
	grants[identity.RoleAuditor][InventoryRead] = true
}
