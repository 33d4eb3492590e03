-- Schema of the coupon service. Idempotent: applied at every start-up and by
-- docker-compose's postgres init. Names are part of the contract (DESIGN section 3).
CREATE TABLE IF NOT EXISTS coupons (
    name             VARCHAR(255) PRIMARY KEY,
    amount           INTEGER      NOT NULL CHECK (amount > 0),
    remaining_amount INTEGER      NOT NULL CHECK (remaining_amount >= 0),
    created_at       TIMESTAMPTZ  DEFAULT now()
);

CREATE TABLE IF NOT EXISTS claims (
    id          SERIAL       PRIMARY KEY,
    user_id     VARCHAR(255) NOT NULL,
    coupon_name VARCHAR(255) NOT NULL REFERENCES coupons (name),
    created_at  TIMESTAMPTZ  DEFAULT now(),
    UNIQUE (user_id, coupon_name)
);

CREATE INDEX IF NOT EXISTS idx_claims_coupon_name ON claims (coupon_name);
CREATE INDEX IF NOT EXISTS idx_claims_user_id ON claims (user_id);
