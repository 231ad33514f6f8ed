package store

// ACMETx is the write side for ACME (RFC 8555) accounts, orders, authorizations, challenges and EAB keys.
type ACMETx interface{}

// ACMEReader is the read side for ACME (RFC 8555) accounts, orders, authorizations, challenges and EAB keys.
type ACMEReader interface{}
