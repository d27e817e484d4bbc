-- Acceptance rounds (one visit = one record) and the template versions records were filled
-- against (a record always keeps its template, even after the county replaces the default).

create table templates (
    ref text primary key,
    source text not null,
    created_at integer not null
);

create table acceptance_rounds (
    -- Also the id of the record's sync entity (`acceptance_record`).
    id blob primary key,
    mine_id blob not null references mines (id),
    round_no integer not null,
    previous_round_id blob references acceptance_rounds (id),
    template_ref text not null references templates (ref),
    disposition text not null,
    created_by blob references users (id),
    created_at integer not null,
    constraint acceptance_rounds_mine_round_key unique (mine_id, round_no)
);
