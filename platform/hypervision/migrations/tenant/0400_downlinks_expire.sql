-- A downlink ChirpStack never transmitted (no `txack` within HV_DOWNLINK_EXPIRY seconds
-- of its request) becomes `expired` instead of staying `queued` for ever
-- (hypervision.chirpstack.downlinks.expire, run by the periodic downlinks job). A txack
-- that still comes later moves it on to `sent`: the events are the truth.
ALTER TABLE downlinks DROP CONSTRAINT downlinks_status_check;
ALTER TABLE downlinks ADD CONSTRAINT downlinks_status_check
    CHECK (status IN ('queued', 'sent', 'acknowledged', 'not_acknowledged', 'expired'));
