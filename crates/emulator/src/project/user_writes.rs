//! The identity rules of a project type: which profile a write acts on (found, created, or
//! refused with a [`RowError`]), the write itself, and GDPR forgetting.

use serde_json::{Map, Value};

use super::profile::{FieldType, User, merge_data};
use super::{Project, RowError};
use crate::config::ProjectType;
use crate::identity::{check_user_id, is_valid_email, normalize_email};

/// How a row resolves to a profile.
enum Resolution {
    Existing(u32),
    Create,
    CreatePlaceholder,
}

/// One user write: subscribe rows, users/update and seeding share it.
#[derive(Debug, Default, Clone)]
pub struct UserWrite<'a> {
    pub email: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub data_fields: Option<&'a Map<String, Value>>,
    pub prefer_user_id: bool,
    pub merge_nested: bool,
    pub existing_only: bool,
}

impl Project {
    pub(super) fn validate(email: Option<&str>, user_id: Option<&str>) -> Result<(), RowError> {
        let bad_email = email.filter(|e| !is_valid_email(e)).map(str::to_string);
        let bad_user_id = user_id.and_then(|u| check_user_id(u).err().map(|p| (u.to_string(), p)));
        if bad_email.is_some() || bad_user_id.is_some() {
            return Err(RowError::Invalid {
                email: bad_email,
                user_id: bad_user_id,
            });
        }
        if email.is_none() && user_id.is_none() {
            return Err(RowError::NoIdentifier);
        }
        Ok(())
    }

    pub(super) fn check_forgotten(
        &self,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<(), RowError> {
        let email = email.is_some_and(|e| self.forgotten_emails.contains(e));
        let user_id = user_id.is_some_and(|u| self.forgotten_user_ids.contains(u));
        if email || user_id {
            Err(RowError::Forgotten { email, user_id })
        } else {
            Ok(())
        }
    }

    /// Finds (or decides to create) the profile a write acts on, by the project type's rules.
    fn resolve(&self, w: &UserWrite<'_>, email: Option<&str>) -> Result<Resolution, RowError> {
        let uid = w.user_id;
        match self.project_type {
            ProjectType::Hybrid => {
                let pu = uid.and_then(|u| self.find(false, u));
                let pe = email.and_then(|e| self.find(true, e));
                match (pu, pe) {
                    (Some(a), Some(b)) if a == b => Ok(Resolution::Existing(a)),
                    // The email belongs to another profile than the userId.
                    (Some(_), Some(_)) => Err(RowError::Conflict {
                        email: true,
                        user_id: false,
                    }),
                    (Some(a), None) => Ok(Resolution::Existing(a)),
                    (None, Some(b)) => {
                        if uid.is_some() && self.users[b as usize].user_id.is_some() {
                            // The email's profile already has another userId.
                            Err(RowError::Conflict {
                                email: false,
                                user_id: true,
                            })
                        } else {
                            Ok(Resolution::Existing(b))
                        }
                    }
                    (None, None) if w.existing_only => Err(RowError::NotFound {
                        email: email.is_some(),
                        user_id: uid.is_some(),
                    }),
                    (None, None) => Ok(Resolution::Create),
                }
            }
            ProjectType::UserId => match uid {
                // Users of userID-based projects are identified by userId only.
                None => Err(RowError::NotFound {
                    email: true,
                    user_id: false,
                }),
                Some(u) => match self.find(false, u) {
                    Some(a) => Ok(Resolution::Existing(a)),
                    None if w.existing_only => Err(RowError::NotFound {
                        email: false,
                        user_id: true,
                    }),
                    None => Ok(Resolution::Create),
                },
            },
            // updateExistingUsersOnly is not honoured in email-based projects.
            ProjectType::Email => match (email, uid) {
                (Some(e), _) => Ok(self
                    .find(true, e)
                    .map_or(Resolution::Create, Resolution::Existing)),
                (None, Some(u)) => match self.find(false, u) {
                    Some(a) => Ok(Resolution::Existing(a)),
                    None if w.prefer_user_id => Ok(Resolution::CreatePlaceholder),
                    None => Err(RowError::NotFound {
                        email: false,
                        user_id: true,
                    }),
                },
                (None, None) => Err(RowError::NoIdentifier),
            },
        }
    }

    fn check_field_types(&self, data: &Map<String, Value>) -> Result<(), RowError> {
        for (k, v) in data {
            if let (Some(incoming), Some(expected)) = (FieldType::of(v), self.field_types.get(k))
                && incoming != *expected
            {
                return Err(RowError::FieldType {
                    field: k.clone(),
                    expected: expected.name(),
                    incoming: incoming.name(),
                });
            }
        }
        Ok(())
    }

    /// Creates or updates a profile. Returns its index and the data fields it created.
    pub fn write_user(
        &mut self,
        w: &UserWrite<'_>,
        placeholder: &mut dyn FnMut() -> String,
    ) -> Result<(u32, Vec<String>), RowError> {
        Self::validate(w.email, w.user_id)?;
        let email = w.email.map(normalize_email);
        let email = email.as_deref();
        self.check_forgotten(email, w.user_id)?;
        if let Some(d) = w.data_fields {
            self.check_field_types(d)?;
        }
        let idx = match self.resolve(w, email)? {
            Resolution::Existing(i) => {
                if let Some(e) = email {
                    self.set_email(i, e);
                }
                if let Some(u) = w.user_id {
                    self.set_user_id(i, u);
                }
                i
            }
            Resolution::Create => self.create_user(email, w.user_id),
            Resolution::CreatePlaceholder => {
                let p = placeholder();
                self.create_user(Some(&p), w.user_id)
            }
        };
        let mut created = Vec::new();
        if let Some(d) = w.data_fields
            && !d.is_empty()
        {
            for (k, v) in d {
                if let Some(t) = FieldType::of(v)
                    && !self.field_types.contains_key(k)
                {
                    self.field_types.insert(k.clone(), t);
                    created.push(k.clone());
                }
            }
            let user = &mut self.users[idx as usize];
            user.data = Some(merge_data(user.data.as_deref(), d, w.merge_nested));
        }
        Ok((idx, created))
    }

    /// Finds the profile an unsubscribe row names, without creating one.
    pub(super) fn lookup(
        &self,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<u32, RowError> {
        let found = match self.project_type {
            ProjectType::Hybrid => user_id
                .and_then(|u| self.find(false, u))
                .or_else(|| email.and_then(|e| self.find(true, e))),
            ProjectType::UserId => user_id.and_then(|u| self.find(false, u)),
            ProjectType::Email => email
                .and_then(|e| self.find(true, e))
                .or_else(|| user_id.and_then(|u| self.find(false, u))),
        };
        found.ok_or(RowError::NotFound {
            email: email.is_some(),
            user_id: user_id.is_some(),
        })
    }

    /// Makes identifiers GDPR-forgotten: the profile is deleted and later writes are refused.
    pub fn forget(&mut self, email: Option<&str>, user_id: Option<&str>) {
        let email = email.map(|e| normalize_email(e).into_owned());
        let mut found: Vec<u32> = [
            email.as_deref().and_then(|e| self.find(true, e)),
            user_id.and_then(|u| self.find(false, u)),
        ]
        .into_iter()
        .flatten()
        .collect();
        found.dedup();
        for idx in found {
            self.unindex(true, idx);
            self.unindex(false, idx);
            self.users[idx as usize] = User::default();
            self.live_users -= 1;
            for l in self.lists.values_mut() {
                l.members.remove(&idx);
            }
        }
        if let Some(e) = email {
            self.forgotten_emails.insert(e);
        }
        if let Some(u) = user_id {
            self.forgotten_user_ids.insert(u.to_string());
        }
    }

    /// Lifts a forget: later writes of these identifiers are taken again.
    pub fn unforget(&mut self, email: Option<&str>, user_id: Option<&str>) {
        if let Some(e) = email {
            self.forgotten_emails.remove(normalize_email(e).as_ref());
        }
        if let Some(u) = user_id {
            self.forgotten_user_ids.remove(u);
        }
    }
}
