-- The certificate that authenticated a machine's latest renewal: besides the
-- current certificate, only it may renew (an answer lost in transit leaves
-- the agent holding it), never an older one.
ALTER TABLE machines ADD COLUMN renewed_by TEXT NOT NULL DEFAULT '';
