package store

// AssessTx is the write side for risk findings, webhook subscriptions and their deliveries.
type AssessTx interface{}

// AssessReader is the read side for risk findings, webhook subscriptions and their deliveries.
type AssessReader interface{}
