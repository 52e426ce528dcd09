-- The sun's declination and equation of time for every day from 2000 to 2100 (NOAA's
-- low-precision formulas, as the members' sun_elevation function), shared by every member
-- schema: the lighting dashboard (views/dash_lighting_hours.sql) tells whether the sun
-- was up for each hour of each lighting circuit from the day's two figures and the hour,
-- with four trigonometric functions per row, instead of calling sun_elevation, whose body
-- runs as a query: 0.5 s for a week of 100 circuits (bench/dashboards.py). Within a day
-- the declination moves by less than half a degree, which does not change a 5-degree
-- threshold. Applied on every database server (member servers get the control schema's
-- structure too).
CREATE TABLE hv_shared.sun_days (
    day         date PRIMARY KEY,
    sin_decl    double precision NOT NULL,  -- sine and cosine of the declination at noon UTC
    cos_decl    double precision NOT NULL,
    eqtime_min  double precision NOT NULL   -- equation of time, in minutes
);
INSERT INTO hv_shared.sun_days (day, sin_decl, cos_decl, eqtime_min)
SELECT d::date, sin(s.decl), cos(s.decl), s.eqtime
FROM generate_series(date '2000-01-01', date '2100-12-31', interval '1 day') d,
     LATERAL (SELECT 2 * pi() / 365 * (extract(doy FROM d) - 1)::float8 AS y) g,
     LATERAL (SELECT 229.18 * (0.000075 + 0.001868 * cos(g.y) - 0.032077 * sin(g.y)
                               - 0.014615 * cos(2 * g.y) - 0.040849 * sin(2 * g.y)) AS eqtime,
                     0.006918 - 0.399912 * cos(g.y) + 0.070257 * sin(g.y)
                     - 0.006758 * cos(2 * g.y) + 0.000907 * sin(2 * g.y)
                     - 0.002697 * cos(3 * g.y) + 0.00148 * sin(3 * g.y) AS decl) s;
GRANT SELECT ON hv_shared.sun_days TO PUBLIC;
