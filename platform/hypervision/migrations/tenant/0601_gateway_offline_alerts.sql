-- Alerts on the network's gateways (condition gateway_offline, for the syndicate's
-- operators; hypervision.alerts): the alert's dev_eui is the gateway's id.
ALTER TABLE alerts DROP CONSTRAINT alerts_condition_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_condition_check
    CHECK (condition IN ('above', 'below', 'silent', 'leak', 'gateway_offline'));
