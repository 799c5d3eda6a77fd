//! A public recommendation dataset as Aperture events: MovieLens 100K, as the RecBole package
//! ships it (`recbole/dataset_example/ml-100k` inside the `recbole` 1.2.1 wheel on PyPI), in
//! RecBole's atomic format: tab-separated files whose header names each column as `name:type`.
//!
//! The ranking trainer and evaluator read Aperture's log, so the dataset becomes one:
//!
//! - each rating user is an account (`ml.user.<id>`, actor id = the dataset's user id), created
//!   a second before their first rating;
//! - each movie is a photo post (post id = the dataset's item id) by an account of its own
//!   (`ml.movie.<id>`, actor id [`MOVIE_ACCOUNT_BASE`] + item id), posted a second before its
//!   first rating, captioned with its title and year and a hashtag per genre (`#scifi`,
//!   `#childrens`, …), so the model's hashtag topics are the genres;
//! - each rating is an Explore `view` at the rating's time (a constant one-second dwell: the
//!   dataset has no attention signal, and a dwell that followed the rating would leak it); a
//!   rating of 4 or 5 adds a `like` a second later, a 5 a `save` two seconds later, and a 1 or 2
//!   a `hide` a second later.
//!
//! The dataset has no comments or shares, so those tasks have no positives: the trainer fits
//! them as constants and the offline table shows them as unmeasured. Event ids derive from the
//! rating's line, so a second conversion of the same files produces the same events, and a
//! second load of them changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aperture_schema::event::{Hide, MediaType, PostCreated, PostRef, Surface, UserCreated, View};
use aperture_schema::extract::extract;
use aperture_schema::{Envelope, Event, WIRE_VERSION};

/// Added to a movie's item id to give the account that posts it an actor id of its own, clear
/// of the dataset's user ids.
pub const MOVIE_ACCOUNT_BASE: u64 = 1_000_000;
/// Longest display name an account may have (`EVENTS.md`); longer titles are cut.
const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Why the dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("could not read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} holds no `.{ext}` file; expected a RecBole atomic dataset such as ml-100k")]
    Missing { dir: PathBuf, ext: &'static str },
    #[error("{dir} holds more than one `.{ext}` file ({found}); point --dir at one dataset")]
    Ambiguous {
        dir: PathBuf,
        ext: &'static str,
        found: String,
    },
    #[error("the header of {path} has no `{column}` column (it has: {found})")]
    Column {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("line {line} of {path}: `{field}` {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        field: &'static str,
        reason: String,
    },
}

/// One movie of the `.item` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Movie {
    pub id: u64,
    pub title: String,
    pub year: Option<String>,
    /// Genre names as the file spells them (`Children's`, `Sci-Fi`).
    pub genres: Vec<String>,
}

/// One line of the `.inter` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    /// The line, from 1 for the header: the event ids' key.
    pub line: usize,
    pub user: u64,
    pub item: u64,
    /// 1 to 5.
    pub rating: u8,
    /// Seconds since the Unix epoch.
    pub ts_s: i64,
}

/// The dataset as read.
#[derive(Debug, Clone, Default)]
pub struct MovieLens {
    pub movies: BTreeMap<u64, Movie>,
    pub ratings: Vec<Rating>,
}

/// A table of tab-separated lines with a `name:type` header.
struct Table {
    path: PathBuf,
    columns: Vec<String>,
    text: String,
}

impl Table {
    fn read(path: PathBuf) -> Result<Table, DatasetError> {
        let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        let columns = text
            .lines()
            .next()
            .unwrap_or_default()
            .split('\t')
            .map(|c| c.split(':').next().unwrap_or_default().trim().to_owned())
            .collect();
        Ok(Table {
            path,
            columns,
            text,
        })
    }

    fn column(&self, name: &'static str) -> Result<usize, DatasetError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DatasetError::Column {
                path: self.path.clone(),
                column: name,
                found: self.columns.join(", "),
            })
    }

    /// Each data line (numbered from 2) split into its fields; blank lines skipped.
    fn rows(&self) -> impl Iterator<Item = (usize, Vec<&str>)> {
        self.text
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.split('\t').collect()))
    }

    fn error(&self, line: usize, field: &'static str, reason: impl Into<String>) -> DatasetError {
        DatasetError::Line {
            path: self.path.clone(),
            line,
            field,
            reason: reason.into(),
        }
    }

    fn field<'a>(
        &self,
        row: &[&'a str],
        line: usize,
        index: usize,
        name: &'static str,
    ) -> Result<&'a str, DatasetError> {
        row.get(index)
            .map(|s| s.trim())
            .ok_or_else(|| self.error(line, name, "is missing: the line has too few fields"))
    }

    fn number<T: std::str::FromStr>(
        &self,
        row: &[&str],
        line: usize,
        index: usize,
        name: &'static str,
    ) -> Result<T, DatasetError> {
        let raw = self.field(row, line, index, name)?;
        raw.parse()
            .map_err(|_| self.error(line, name, format!("is {raw:?}, not a number of its kind")))
    }
}

/// The one file of `dir` whose name ends in `.ext`.
fn file_with(dir: &Path, ext: &'static str) -> Result<PathBuf, DatasetError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    match found.len() {
        0 => Err(DatasetError::Missing {
            dir: dir.to_owned(),
            ext,
        }),
        1 => Ok(found.remove(0)),
        _ => Err(DatasetError::Ambiguous {
            dir: dir.to_owned(),
            ext,
            found: found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Reads the `.item` and `.inter` files of `dir`. Every rating must name a movie of the item
/// file and carry a whole rating from 1 to 5 and a non-negative timestamp.
pub fn read(dir: &Path) -> Result<MovieLens, DatasetError> {
    let items = Table::read(file_with(dir, "item")?)?;
    let (id, title, year, class) = (
        items.column("item_id")?,
        items.column("movie_title")?,
        items.column("release_year")?,
        items.column("class")?,
    );
    let mut movies = BTreeMap::new();
    for (line, row) in items.rows() {
        let movie = Movie {
            id: items.number(&row, line, id, "item_id")?,
            title: items.field(&row, line, title, "movie_title")?.to_owned(),
            year: Some(items.field(&row, line, year, "release_year")?)
                .filter(|y| !y.is_empty())
                .map(str::to_owned),
            genres: row
                .get(class)
                .map(|c| c.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        if movie.id == 0 {
            return Err(items.error(line, "item_id", "is 0; ids start at 1"));
        }
        movies.insert(movie.id, movie);
    }

    let inter = Table::read(file_with(dir, "inter")?)?;
    let (user, item, rating, timestamp) = (
        inter.column("user_id")?,
        inter.column("item_id")?,
        inter.column("rating")?,
        inter.column("timestamp")?,
    );
    let mut ratings = Vec::new();
    for (line, row) in inter.rows() {
        let r = Rating {
            line,
            user: inter.number(&row, line, user, "user_id")?,
            item: inter.number(&row, line, item, "item_id")?,
            rating: {
                let value: f64 = inter.number(&row, line, rating, "rating")?;
                if !(1.0..=5.0).contains(&value) || value.fract() != 0.0 {
                    return Err(inter.error(
                        line,
                        "rating",
                        format!("is {value}; it must be a whole number from 1 to 5"),
                    ));
                }
                value as u8
            },
            ts_s: {
                let value: f64 = inter.number(&row, line, timestamp, "timestamp")?;
                if value < 0.0 {
                    return Err(inter.error(line, "timestamp", "is negative"));
                }
                value as i64
            },
        };
        if r.user == 0 || r.user >= MOVIE_ACCOUNT_BASE {
            return Err(inter.error(
                line,
                "user_id",
                format!(
                    "is {}; it must be from 1 to {}",
                    r.user,
                    MOVIE_ACCOUNT_BASE - 1
                ),
            ));
        }
        if !movies.contains_key(&r.item) {
            return Err(inter.error(
                line,
                "item_id",
                format!("is {}, which the item file does not list", r.item),
            ));
        }
        ratings.push(r);
    }
    Ok(MovieLens { movies, ratings })
}

/// A genre as a hashtag: lower case, letters and digits only (`Children's` → `childrens`).
pub fn genre_tag(genre: &str) -> String {
    genre
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn envelope(event_id: String, actor_id: u64, ts: i64, event: Event) -> Envelope {
    Envelope {
        v: WIRE_VERSION,
        event_id,
        actor_id,
        ts,
        event,
    }
}

fn account(username: String, display_name: Option<String>) -> Event {
    Event::UserCreated(UserCreated {
        username,
        display_name,
        private: false,
        verified: false,
    })
}

/// The dataset as events in event-time order (each actor's in the order they happened),
/// as the module documentation describes.
pub fn to_events(ml: &MovieLens) -> Vec<Envelope> {
    let mut first_rating: BTreeMap<u64, i64> = BTreeMap::new();
    let mut first_rated: BTreeMap<u64, i64> = BTreeMap::new();
    for r in &ml.ratings {
        let ts = r.ts_s * 1000;
        first_rating
            .entry(r.user)
            .and_modify(|t| *t = (*t).min(ts))
            .or_insert(ts);
        first_rated
            .entry(r.item)
            .and_modify(|t| *t = (*t).min(ts))
            .or_insert(ts);
    }

    let mut events = Vec::with_capacity(ml.ratings.len() * 2 + first_rated.len() * 2);
    for (&user, &first) in &first_rating {
        events.push(envelope(
            format!("ml-user-{user}"),
            user,
            first - 1000,
            account(format!("ml.user.{user}"), None),
        ));
    }
    for (&item, &first) in &first_rated {
        let movie = &ml.movies[&item];
        let author = MOVIE_ACCOUNT_BASE + item;
        let name: String = movie.title.chars().take(MAX_DISPLAY_NAME_CHARS).collect();
        events.push(envelope(
            format!("ml-movie-{item}"),
            author,
            first - 2000,
            account(
                format!("ml.movie.{item}"),
                Some(name).filter(|n| !n.is_empty()),
            ),
        ));
        let mut caption = movie.title.clone();
        if let Some(year) = &movie.year {
            caption.push_str(&format!(" ({year})"));
        }
        for genre in &movie.genres {
            let tag = genre_tag(genre);
            if !tag.is_empty() {
                caption.push_str(" #");
                caption.push_str(&tag);
            }
        }
        let tags = extract(&caption);
        events.push(envelope(
            format!("ml-post-{item}"),
            author,
            first - 1000,
            Event::PostCreated(PostCreated {
                post_id: item,
                media_type: MediaType::Photo,
                media: vec![format!("movielens/{item}.jpg")],
                caption,
                location: None,
                hashtags: tags.hashtags,
                mentions: tags.mentions,
            }),
        ));
    }
    for r in &ml.ratings {
        let ts = r.ts_s * 1000;
        let author_id = MOVIE_ACCOUNT_BASE + r.item;
        let post = PostRef {
            post_id: r.item,
            author_id,
        };
        let id = |what: &str| format!("ml-{}-{what}", r.line);
        events.push(envelope(
            id("view"),
            r.user,
            ts,
            Event::View(View {
                post_id: r.item,
                author_id,
                surface: Surface::Explore,
                dwell_ms: 1000,
                watch_ms: None,
            }),
        ));
        if r.rating >= 4 {
            events.push(envelope(
                id("like"),
                r.user,
                ts + 1000,
                Event::Like(post.clone()),
            ));
        }
        if r.rating == 5 {
            events.push(envelope(id("save"), r.user, ts + 2000, Event::Save(post)));
        }
        if r.rating <= 2 {
            events.push(envelope(
                id("hide"),
                r.user,
                ts + 1000,
                Event::Hide(Hide {
                    post_id: r.item,
                    author_id,
                    surface: Surface::Explore,
                }),
            ));
        }
    }
    // Stable: at one instant, accounts come before posts and posts before ratings.
    events.sort_by_key(|e| e.ts);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_schema::validate;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ml-100k.item",
            "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
             1\tToy Story\t1995\tAnimation Children's Comedy\n\
             2\tAlien\t1979\tSci-Fi Horror\n\
             3\tA title longer than any display name may be, which the converter must cut short\t\tFilm-Noir\n",
        );
        write(
            dir.path(),
            "ml-100k.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             7\t2\t5\t881250949\n\
             7\t1\t2\t881250900\n\
             9\t1\t4\t881250950\n\
             9\t3\t3\t881250951\n",
        );
        dir
    }

    #[test]
    fn every_converted_event_is_valid_and_in_time_order() {
        let dir = sample();
        let events = to_events(&read(dir.path()).unwrap());
        for e in &events {
            validate::check(e).unwrap_or_else(|err| panic!("{}: {err}", e.event_id));
        }
        assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
        let ids: std::collections::HashSet<_> = events.iter().map(|e| &e.event_id).collect();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
        // 2 users, 3 movies (account and post each), 4 views, likes of the 5 and the 4, one
        // save of the 5, one hide of the 2.
        assert_eq!(events.len(), 2 + 6 + 4 + 2 + 1 + 1);
    }

    #[test]
    fn ratings_become_views_and_engagement_of_the_movie_post() {
        let dir = sample();
        let events = to_events(&read(dir.path()).unwrap());
        let of = |id: &str| events.iter().find(|e| e.event_id == id);
        let view = of("ml-2-view").expect("the first rating's view");
        assert_eq!(view.actor_id, 7);
        assert_eq!(view.ts, 881_250_949_000);
        match &view.event {
            Event::View(v) => {
                assert_eq!((v.post_id, v.author_id), (2, MOVIE_ACCOUNT_BASE + 2));
                assert_eq!(v.surface, Surface::Explore);
            }
            other => panic!("not a view: {other:?}"),
        }
        assert!(of("ml-2-like").is_some() && of("ml-2-save").is_some());
        assert!(of("ml-2-hide").is_none());
        assert!(of("ml-3-hide").is_some() && of("ml-3-like").is_none());
        assert!(of("ml-4-like").is_some() && of("ml-4-save").is_none());
        assert!(of("ml-5-like").is_none() && of("ml-5-hide").is_none());
        // The post precedes its first rating (line 3, at …900) and names its genres.
        let post = of("ml-post-1").unwrap();
        assert_eq!(post.ts, 881_250_900_000 - 1000);
        match &post.event {
            Event::PostCreated(p) => assert_eq!(p.hashtags, ["animation", "childrens", "comedy"]),
            other => panic!("not a post: {other:?}"),
        }
        assert!(of("ml-user-7").unwrap().ts < of("ml-3-view").unwrap().ts);
    }

    #[test]
    fn genres_become_hashtags() {
        assert_eq!(genre_tag("Sci-Fi"), "scifi");
        assert_eq!(genre_tag("Children's"), "childrens");
        assert_eq!(genre_tag("Film-Noir"), "filmnoir");
    }

    #[test]
    fn bad_lines_name_the_file_the_line_and_the_field() {
        let dir = sample();
        let inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
        for (body, field, line) in [
            ("7\t99\t5\t881250949\n", "item_id", 2),
            ("7\t1\t6\t881250949\n", "rating", 2),
            ("7\t1\t5\t881250949\n7\t1\tfive\t881250949\n", "rating", 3),
            ("7\t1\t5\n", "timestamp", 2),
            ("0\t1\t5\t881250949\n", "user_id", 2),
        ] {
            write(dir.path(), "ml-100k.inter", &format!("{inter}{body}"));
            match read(dir.path()) {
                Err(DatasetError::Line {
                    field: f, line: l, ..
                }) => assert_eq!((f, l), (field, line), "{body:?}"),
                other => panic!("{body:?} gave {other:?}"),
            }
        }
        write(dir.path(), "ml-100k.inter", "user:token\titem_id:token\n");
        assert!(matches!(
            read(dir.path()),
            Err(DatasetError::Column {
                column: "user_id",
                ..
            })
        ));
        write(dir.path(), "other.inter", inter);
        assert!(matches!(
            read(dir.path()),
            Err(DatasetError::Ambiguous { ext: "inter", .. })
        ));
    }
}
