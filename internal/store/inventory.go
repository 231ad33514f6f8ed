package store

// InventoryTx is the write side for discovered and imported identities and the locations they were seen at.
type InventoryTx interface{}

// InventoryReader is the read side for discovered and imported identities and the locations they were seen at.
type InventoryReader interface{}
