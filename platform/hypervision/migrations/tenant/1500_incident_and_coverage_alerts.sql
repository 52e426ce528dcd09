-- Alerts the platform raises itself rather than a member's rule (hypervision.syndicate):
-- `incident` (a personal-data breach recorded: the member's DPO is told), and
-- `incident_deadline` (a legal clock of an incident runs out: rule `incident-<id>`,
-- dev_eui the clock's name), and `coverage_margin` (a device's radio margin stayed under
-- the threshold for a week: dev_eui the device). The evaluation of rules leaves them alone.
ALTER TABLE alerts DROP CONSTRAINT alerts_condition_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_condition_check
    CHECK (condition IN ('above', 'below', 'silent', 'leak', 'gateway_offline',
                         'incident', 'incident_deadline', 'coverage_margin'));
