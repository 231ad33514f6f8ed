package store

// AgentTx is the write side for machines enrolled by sigil agent and their single-use join tokens.
type AgentTx interface{}

// AgentReader is the read side for machines enrolled by sigil agent and their single-use join tokens.
type AgentReader interface{}
