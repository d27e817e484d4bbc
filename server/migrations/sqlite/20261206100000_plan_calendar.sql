-- The action plan as the county lives it.
--
-- 1. A transition may carry the date it happened on paper: `as_of` is that date (the date the
--    workflow counts from), `recorded_on` the server's county date when it was received. Steps
--    recorded before this migration happened on the day they were received.
alter table mine_events add column recorded_on text not null default '';
update mine_events set recorded_on = as_of;

-- 2. The approval documents of a 延续 mine become records (number, issuer, date) instead of
--    flags: `facts_json.documents` goes from ["development_plan", …] to {"development_plan":
--    {"number": "", "issuer": "", "date": "…"}, …}. The number and issuer were never asked for
--    (left empty); the date is the day the step was recorded in the audit trail (the approval's
--    date when the trail has none).
update mines
set facts_json = json_set(
    facts_json,
    '$.documents',
    json((
        select coalesce(json_group_object(d.value, json_object(
            'number', '',
            'issuer', '',
            'date', coalesce(
                (select min(e.as_of) from mine_events e
                 where e.mine_id = mines.id
                   and e.transition = 'record_approval_document'
                   and coalesce(json_extract(e.data_json, '$.transition.document'),
                                json_extract(e.data_json, '$.document')) = d.value),
                json_extract(mines.facts_json, '$.approved_on'),
                '1970-01-01'))), '{}')
        from json_each(mines.facts_json, '$.documents') d
    ))
)
where json_type(facts_json, '$.documents') = 'array';

-- 3. 市场监督管理局: the plan names it among the bodies that cancel a closed mine's licences (it
--    cancels the business licence, 营业执照). It inspects no items: an observer.
insert into departments (code, name, observer, sort_order, created_at) values
    ('market_regulation', '市场监督管理局', 1, 16, unixepoch() * 1000);
