-- Battery forecast per active device: the trend of its daily battery level over the last
-- 30 days (least squares, battery_trends, kept by the refresh job), and when it reaches
-- the member's low-battery threshold. A device without a level in the last 30 days has no
-- forecast.
CREATE OR REPLACE VIEW dash_battery_forecast AS
WITH b AS (
    SELECT dev_eui, battery_pct, slope_pct_day
    FROM battery_trends
    WHERE last_day >= current_date - 30
)
SELECT d.dev_eui,
       d.name AS device_name,
       hv_shared.category_label(d.category) AS category_label,
       b.battery_pct,
       round(b.slope_pct_day::numeric, 3) AS slope_pct_day,
       CASE WHEN b.battery_pct <= p.batterie_faible_pct THEN 0
            WHEN b.slope_pct_day < 0
            THEN round(((b.battery_pct - p.batterie_faible_pct) / -b.slope_pct_day)::numeric)
       END AS days_to_low,
       CASE WHEN b.battery_pct <= p.batterie_faible_pct THEN 'Batterie faible'
            WHEN b.slope_pct_day < 0
                 AND (b.battery_pct - p.batterie_faible_pct) / -b.slope_pct_day <= 90
            THEN 'À remplacer sous 3 mois'
            ELSE 'Normal' END AS forecast
FROM b
JOIN analytics_devices d ON d.dev_eui = b.dev_eui
CROSS JOIN v_parametres p
WHERE d.active;
