//! The wire contract of `EVENTS.md`: the example parses, every event type round-trips, and every
//! validation rule is covered by a table of bad events naming the field and the rule.

use aperture_schema::event::*;
use aperture_schema::validate::{self, Rule};
use aperture_schema::{Envelope, Event, EventKind, Origin, decode};
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: i64 = 1_763_856_000_000;

fn app(v: &Value) -> Result<Envelope, aperture_schema::ValidationError> {
    let env = decode(&serde_json::to_vec(v).unwrap(), Origin::App)?;
    validate::check_clock(&env, NOW, 300_000)?;
    Ok(env)
}

#[test]
fn the_example_of_events_md_parses_and_carries_derived_tags() {
    let raw = r##"{"v":1,"event_id":"01JD3K8W5Q0000000000000001","type":"post_created","actor_id":42,
 "ts":1763856000000,"post_id":9001,"media_type":"reel","media":["m/42/9001.mp4"],
 "caption":"Golden hour at the pier #Sunset #travel @ana"}"##;
    let env = decode(raw.as_bytes(), Origin::App).expect("the documented example is valid");
    assert_eq!(env.actor_id, 42);
    assert_eq!(env.kind(), EventKind::PostCreated);
    let Event::PostCreated(p) = &env.event else {
        panic!("not a post")
    };
    assert_eq!(p.hashtags, ["sunset", "travel"]);
    assert_eq!(p.mentions, ["ana"]);
    let wire: Value = serde_json::from_slice(&env.to_json()).unwrap();
    assert_eq!(wire["hashtags"], json!(["sunset", "travel"]));
    assert_eq!(wire["mentions"], json!(["ana"]));
    assert_eq!(wire["type"], "post_created");
    // What ingest writes to the topic decodes again from the topic.
    assert_eq!(decode(&env.to_json(), Origin::Topic).unwrap(), env);
}

/// One valid example per type, as an app sends it.
fn examples() -> Vec<Value> {
    let e = |t: &str, fields: Value| {
        let mut m = json!({"v":1,"event_id":format!("ev-{t}"),"type":t,"actor_id":7,"ts":NOW});
        m.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        m
    };
    vec![
        e(
            "user_created",
            json!({"username":"ana.b_1","display_name":"Ana","private":false,"verified":true}),
        ),
        e("user_updated", json!({"private":true})),
        e("follow", json!({"target_id":8})),
        e("unfollow", json!({"target_id":8})),
        e("follow_request_approved", json!({"requester_id":8})),
        e("block", json!({"target_id":8})),
        e("unblock", json!({"target_id":8})),
        e("close_friend_added", json!({"target_id":8})),
        e("close_friend_removed", json!({"target_id":8})),
        e(
            "post_created",
            json!({"post_id":1,"media_type":"carousel","media":["a","b"],"caption":"hi #x @y",
            "location":{"name":"Pier","lat":1.5,"lng":-3.0}}),
        ),
        e("post_deleted", json!({"post_id":1})),
        e(
            "story_created",
            json!({"story_id":2,"media_type":"video","media":["s.mp4"],"audience":"close_friends"}),
        ),
        e("story_viewed", json!({"story_id":2,"author_id":8})),
        e("like", json!({"post_id":1,"author_id":8})),
        e("unlike", json!({"post_id":1,"author_id":8})),
        e(
            "comment_created",
            json!({"comment_id":3,"post_id":1,"author_id":8,"text":"nice @ana #wow"}),
        ),
        e(
            "comment_deleted",
            json!({"comment_id":3,"post_id":1,"author_id":8}),
        ),
        e("share", json!({"post_id":1,"author_id":8,"to_id":9})),
        e("save", json!({"post_id":1,"author_id":8})),
        e("unsave", json!({"post_id":1,"author_id":8})),
        e(
            "view",
            json!({"post_id":1,"author_id":8,"surface":"reels","dwell_ms":1200,"watch_ms":900}),
        ),
        e("profile_view", json!({"target_id":8})),
        e(
            "hide",
            json!({"post_id":1,"author_id":8,"surface":"explore"}),
        ),
        e("report", json!({"post_id":1,"author_id":8,"reason":"spam"})),
    ]
}

#[test]
fn every_event_type_has_a_valid_example_that_round_trips() {
    let examples = examples();
    let kinds: Vec<_> = examples
        .iter()
        .map(|v| app(v).unwrap_or_else(|e| panic!("{v}: {e}")).kind())
        .collect();
    assert_eq!(kinds, EventKind::ALL, "one example per type, in order");
    for v in &examples {
        let env = app(v).unwrap();
        let back = decode(&env.to_json(), Origin::Topic).unwrap();
        assert_eq!(back, env);
        let via_serde: Envelope = serde_json::from_slice(&env.to_json()).unwrap();
        assert_eq!(via_serde, env);
        // The app form is what the app sent; the wire form adds exactly the derived fields.
        let app_form: Value = serde_json::from_slice(&env.to_app_json()).unwrap();
        assert_eq!(&app_form, v);
        let mut wire: Value = serde_json::from_slice(&env.to_json()).unwrap();
        let obj = wire.as_object_mut().unwrap();
        obj.remove("hashtags");
        obj.remove("mentions");
        assert_eq!(&wire, v);
    }
}

fn with(base: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = examples()
        .into_iter()
        .find(|v| v["type"] == base)
        .expect("a base example of that type");
    edit(v.as_object_mut().unwrap());
    v
}

fn set(key: &'static str, value: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        m.insert(key.to_owned(), value);
    }
}

fn unset(key: &'static str) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |m| {
        m.remove(key);
    }
}

#[test]
fn every_rule_rejects_with_field_and_rule() {
    let long = |n: usize| Value::String("x".repeat(n));
    let many_tags = (0..31)
        .map(|i| format!("#t{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let many_mentions = (0..21)
        .map(|i| format!("@u{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let max_id = (1u64 << 53) - 1;
    let cases: Vec<(&str, Value, Option<&str>, Rule)> = vec![
        ("not an object", json!([1, 2]), None, Rule::Type),
        (
            "v missing",
            with("like", unset("v")),
            Some("v"),
            Rule::Required,
        ),
        (
            "v wrong",
            with("like", set("v", json!(2))),
            Some("v"),
            Rule::Version,
        ),
        (
            "v not a number",
            with("like", set("v", json!("1"))),
            Some("v"),
            Rule::Type,
        ),
        (
            "event_id missing",
            with("like", unset("event_id")),
            Some("event_id"),
            Rule::Required,
        ),
        (
            "event_id empty",
            with("like", set("event_id", json!(""))),
            Some("event_id"),
            Rule::Length,
        ),
        (
            "event_id too long",
            with("like", set("event_id", long(65))),
            Some("event_id"),
            Rule::Length,
        ),
        (
            "event_id bad char",
            with("like", set("event_id", json!("a b"))),
            Some("event_id"),
            Rule::Pattern,
        ),
        (
            "type missing",
            with("like", unset("type")),
            Some("type"),
            Rule::Required,
        ),
        (
            "type unknown",
            with("like", set("type", json!("poke"))),
            Some("type"),
            Rule::UnknownType,
        ),
        (
            "actor_id zero",
            with("like", set("actor_id", json!(0))),
            Some("actor_id"),
            Rule::IdRange,
        ),
        (
            "actor_id above 2^53-1",
            with("like", set("actor_id", json!(max_id + 1))),
            Some("actor_id"),
            Rule::IdRange,
        ),
        (
            "actor_id negative",
            with("like", set("actor_id", json!(-4))),
            Some("actor_id"),
            Rule::Type,
        ),
        (
            "actor_id float",
            with("like", set("actor_id", json!(1.5))),
            Some("actor_id"),
            Rule::Type,
        ),
        (
            "ts far future",
            with("like", set("ts", json!(NOW + 300_001))),
            Some("ts"),
            Rule::FutureTs,
        ),
        (
            "ts negative",
            with("like", set("ts", json!(-1))),
            Some("ts"),
            Rule::Range,
        ),
        (
            "ts string",
            with("like", set("ts", json!("now"))),
            Some("ts"),
            Rule::Type,
        ),
        (
            "extra field",
            with("like", set("colour", json!("red"))),
            Some("colour"),
            Rule::UnknownField,
        ),
        (
            "field of another type",
            with("like", set("target_id", json!(3))),
            Some("target_id"),
            Rule::UnknownField,
        ),
        (
            "missing field",
            with("like", unset("author_id")),
            Some("author_id"),
            Rule::Required,
        ),
        (
            "wrong field type",
            with("like", set("post_id", json!("1"))),
            Some("post_id"),
            Rule::Type,
        ),
        (
            "post_id zero",
            with("like", set("post_id", json!(0))),
            Some("post_id"),
            Rule::IdRange,
        ),
        (
            "author_id too big",
            with("like", set("author_id", json!(max_id + 1))),
            Some("author_id"),
            Rule::IdRange,
        ),
        (
            "username short",
            with("user_created", set("username", json!("ab"))),
            Some("username"),
            Rule::Length,
        ),
        (
            "username long",
            with("user_created", set("username", long(31))),
            Some("username"),
            Rule::Length,
        ),
        (
            "username upper",
            with("user_created", set("username", json!("Ana"))),
            Some("username"),
            Rule::Pattern,
        ),
        (
            "display_name long",
            with("user_created", set("display_name", long(65))),
            Some("display_name"),
            Rule::Length,
        ),
        (
            "private missing",
            with("user_created", unset("private")),
            Some("private"),
            Rule::Required,
        ),
        (
            "update of nothing",
            with("user_updated", unset("private")),
            None,
            Rule::AtLeastOne,
        ),
        (
            "follow oneself",
            with("follow", set("target_id", json!(7))),
            Some("target_id"),
            Rule::NotSelf,
        ),
        (
            "block oneself",
            with("block", set("target_id", json!(7))),
            Some("target_id"),
            Rule::NotSelf,
        ),
        (
            "approve oneself",
            with("follow_request_approved", set("requester_id", json!(7))),
            Some("requester_id"),
            Rule::NotSelf,
        ),
        (
            "share to oneself",
            with("share", set("to_id", json!(7))),
            Some("to_id"),
            Rule::NotSelf,
        ),
        (
            "caption too long",
            with("post_created", set("caption", long(2201))),
            Some("caption"),
            Rule::Length,
        ),
        (
            "media type unknown",
            with("post_created", set("media_type", json!("gif"))),
            Some("media_type"),
            Rule::OneOf,
        ),
        (
            "carousel of one",
            with("post_created", set("media", json!(["a"]))),
            Some("media"),
            Rule::Count,
        ),
        (
            "carousel of eleven",
            with("post_created", set("media", json!(vec!["a"; 11]))),
            Some("media"),
            Rule::Count,
        ),
        (
            "photo of two",
            with("post_created", |m| {
                m.insert("media_type".into(), json!("photo"));
            }),
            Some("media"),
            Rule::Count,
        ),
        (
            "media ref long",
            with("post_created", set("media", json!(["a", "x".repeat(257)]))),
            Some("media[1]"),
            Rule::Length,
        ),
        (
            "media ref empty",
            with("post_created", set("media", json!(["a", ""]))),
            Some("media[1]"),
            Rule::Length,
        ),
        (
            "location lat",
            with(
                "post_created",
                set("location", json!({"name":"x","lat":91.0,"lng":0.0})),
            ),
            Some("location.lat"),
            Rule::Range,
        ),
        (
            "location lng",
            with(
                "post_created",
                set("location", json!({"name":"x","lat":0.0,"lng":-181.0})),
            ),
            Some("location.lng"),
            Rule::Range,
        ),
        (
            "location name",
            with(
                "post_created",
                set(
                    "location",
                    json!({"name":"x".repeat(129),"lat":0.0,"lng":0.0}),
                ),
            ),
            Some("location.name"),
            Rule::Length,
        ),
        (
            "location missing lat",
            with(
                "post_created",
                set("location", json!({"name":"x","lng":0.0})),
            ),
            Some("location.lat"),
            Rule::Required,
        ),
        (
            "too many hashtags",
            with("post_created", set("caption", json!(many_tags))),
            Some("caption"),
            Rule::TooManyHashtags,
        ),
        (
            "too many mentions",
            with("post_created", set("caption", json!(many_mentions))),
            Some("caption"),
            Rule::TooManyMentions,
        ),
        (
            "hashtags sent by app",
            with("post_created", set("hashtags", json!(["x"]))),
            Some("hashtags"),
            Rule::Derived,
        ),
        (
            "mentions sent by app",
            with("comment_created", set("mentions", json!(["x"]))),
            Some("mentions"),
            Rule::Derived,
        ),
        (
            "story of two media",
            with("story_created", set("media", json!(["a", "b"]))),
            Some("media"),
            Rule::Count,
        ),
        (
            "story audience",
            with("story_created", set("audience", json!("public"))),
            Some("audience"),
            Rule::OneOf,
        ),
        (
            "comment empty",
            with("comment_created", set("text", json!(""))),
            Some("text"),
            Rule::Length,
        ),
        (
            "comment too long",
            with("comment_created", set("text", long(2201))),
            Some("text"),
            Rule::Length,
        ),
        (
            "view surface",
            with("view", set("surface", json!("tv"))),
            Some("surface"),
            Rule::OneOf,
        ),
        (
            "dwell negative",
            with("view", set("dwell_ms", json!(-1))),
            Some("dwell_ms"),
            Rule::Type,
        ),
        (
            "dwell over a day",
            with("view", set("dwell_ms", json!(86_400_001u64))),
            Some("dwell_ms"),
            Rule::Range,
        ),
        (
            "watch over a day",
            with("view", set("watch_ms", json!(86_400_001u64))),
            Some("watch_ms"),
            Rule::Range,
        ),
        (
            "report reason",
            with("report", set("reason", json!("meh"))),
            Some("reason"),
            Rule::OneOf,
        ),
    ];
    let mut covered = std::collections::HashSet::new();
    for (name, value, field, rule) in &cases {
        let err = app(value).expect_err(name);
        assert_eq!(
            (err.field.as_deref(), err.rule),
            (*field, *rule),
            "{name}: {err}"
        );
        assert!(
            !err.message.is_empty() && !err.message.ends_with('.'),
            "{name}: {err}"
        );
        if let Some(f) = field {
            let root = f.split(['.', '[']).next().unwrap();
            assert!(
                err.message.contains(root),
                "{name}: message should name {root}: {err}"
            );
        }
        covered.insert(*rule);
    }
    let json_err = decode(b"{not json", Origin::App).unwrap_err();
    assert_eq!(json_err.rule, Rule::Json);
    covered.insert(Rule::Json);
    for rule in Rule::ALL {
        assert!(covered.contains(&rule), "no case covers rule {rule}");
    }
}

#[test]
fn topic_origin_accepts_derived_fields_but_rederives_them() {
    let mut v = examples()[9].clone();
    v["hashtags"] = json!(["forged"]);
    v["mentions"] = json!([]);
    let env = decode(&serde_json::to_vec(&v).unwrap(), Origin::Topic).unwrap();
    let Event::PostCreated(p) = env.event else {
        panic!("not a post")
    };
    assert_eq!(p.hashtags, ["x"]);
    assert_eq!(p.mentions, ["y"]);
}

#[test]
fn ids_at_the_limit_are_accepted() {
    let max_id = (1u64 << 53) - 1;
    let v = with("like", |m| {
        m.insert("post_id".into(), json!(max_id));
        m.insert("actor_id".into(), json!(max_id));
    });
    assert!(app(&v).is_ok());
}

fn arb_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("#".to_owned()),
            Just("@".to_owned()),
            Just(" ".to_owned()),
            "[a-zA-Z0-9_éü東]{1,6}",
        ],
        0..20,
    )
    .prop_map(|parts| parts.concat())
}

fn arb_event() -> impl Strategy<Value = Event> {
    let id = 1u64..=(1u64 << 53) - 1;
    prop_oneof![
        (
            "[a-z0-9._]{3,30}",
            proptest::option::of("[ -~]{0,64}"),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(username, display_name, private, verified)| Event::UserCreated(UserCreated {
                    username,
                    display_name,
                    private,
                    verified
                })
            ),
        id.clone()
            .prop_map(|t| Event::Unfollow(Target { target_id: t })),
        (id.clone(), id.clone())
            .prop_map(|(post_id, author_id)| Event::Like(PostRef { post_id, author_id })),
        (
            id.clone(),
            prop::sample::select(MediaType::ALL.to_vec()),
            arb_text()
        )
            .prop_map(|(post_id, media_type, caption)| {
                let media = match media_type {
                    MediaType::Carousel => vec!["a".into(), "b".into()],
                    _ => vec!["a".into()],
                };
                let tags = aperture_schema::extract::extract(&caption);
                Event::PostCreated(PostCreated {
                    post_id,
                    media_type,
                    media,
                    caption,
                    location: None,
                    hashtags: tags.hashtags,
                    mentions: tags.mentions,
                })
            }),
        (
            id.clone(),
            id.clone(),
            prop::sample::select(Surface::ALL.to_vec()),
            0u64..86_400_000,
            proptest::option::of(0u64..86_400_000)
        )
            .prop_map(
                |(post_id, author_id, surface, dwell_ms, watch_ms)| Event::View(View {
                    post_id,
                    author_id,
                    surface,
                    dwell_ms,
                    watch_ms
                })
            ),
    ]
}

proptest! {
    #[test]
    fn any_valid_event_round_trips_through_the_wire(
        event in arb_event(),
        actor_id in 1u64..=(1u64 << 53) - 1,
        ts in 0i64..NOW,
        event_id in "[A-Za-z0-9_-]{1,64}",
    ) {
        let env = Envelope { v: 1, event_id, actor_id, ts, event };
        // Events of random content may break a rule (too many tags): then decoding must say so.
        match validate::check(&env) {
            Ok(()) => prop_assert_eq!(decode(&env.to_json(), Origin::Topic).unwrap(), env),
            Err(e) => prop_assert_eq!(decode(&env.to_json(), Origin::Topic).unwrap_err(), e),
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, Origin::App);
    }
}
