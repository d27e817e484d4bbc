-- The mining-right holder's account (采矿权人), bound to their mines by the county office: the
-- holder sees those mines and applies for cancellation on them. Null: not bound (the `holder`
-- column keeps the holder's name either way).
alter table mines add column holder_user_id blob references users (id);
create index mines_holder_user_idx on mines (holder_user_id);
