/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codechat-accounts.h"
#include "codechat-protocol.h"

#define ACCOUNTS_GROUP "accounts"
#define HASH_PREFIX    "sha256:"
#define HASH_LEN       (sizeof(HASH_PREFIX) - 1 + 64)
#define TOKEN_BYTES    32

typedef struct {
	gchar *nick; /* (owned) as it was added */
	gchar *hash; /* (owned) "sha256:" and 64 lowercase hex digits */
} Account;

struct _CodechatAccounts {
	GObject parent_instance;
	gchar *dir;	       /* (owned) */
	gchar *path;	       /* (owned) DIR/accounts */
	gchar *lock_path;      /* (owned) DIR/accounts.lock, for `codechatd user` only */
	GHashTable *accounts;  /* (owned) folded nick -> (owned) Account */
	GFileMonitor *monitor; /* (owned) (nullable) */
	gboolean exists;       /* what the last load saw, to notice changes */
	dev_t dev;
	ino_t ino;
	off_t size;
	gint64 mtime_ns;
	gint64 ctime_ns;
};

G_DEFINE_FINAL_TYPE(CodechatAccounts, codechat_accounts, G_TYPE_OBJECT)

enum {
	SIGNAL_CHANGED,
	N_SIGNALS
};
static guint signals[N_SIGNALS] = {0};

static void
account_free(Account *account)
{
	g_free(account->nick);
	g_free(account->hash);
	g_free(account);
}

/*
 * The token is 256 bits from the kernel's CSPRNG, so a single unsalted
 * SHA-256 is enough to store it: there is no dictionary to attack and no
 * way to brute-force 2^256 guesses; a slow password hash would only slow
 * every hello down.
 */
static gchar *
token_hash(const gchar *token)
{
	g_autofree gchar *hex = g_compute_checksum_for_string(G_CHECKSUM_SHA256, token, -1);
	return g_strconcat(HASH_PREFIX, hex, NULL);
}

static gboolean
hash_is_valid(const gchar *hash)
{
	if (hash == NULL || strlen(hash) != HASH_LEN || !g_str_has_prefix(hash, HASH_PREFIX))
		return FALSE;
	for (gsize i = sizeof(HASH_PREFIX) - 1; i < HASH_LEN; i++) {
		if (!g_ascii_isxdigit(hash[i]) || g_ascii_isupper(hash[i]))
			return FALSE;
	}
	return TRUE;
}

/* every byte is looked at, whatever the first difference: how long the
 * comparison takes says nothing about the stored hash */
static gboolean
hash_equal(const gchar *a, const gchar *b)
{
	guint8 diff = 0;

	for (gsize i = 0; i < HASH_LEN; i++)
		diff |= (guint8)a[i] ^ (guint8)b[i];
	return diff == 0;
}

/* 32 bytes from getrandom(2), as URL-safe base64 without padding */
static gchar *
token_new(GError **error)
{
	guint8 buf[TOKEN_BYTES];
	gsize got = 0;
	g_autofree gchar *b64 = NULL;
	gsize len;

	while (got < sizeof(buf)) {
		ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
		if (n < 0) {
			gint saved = errno;
			if (saved == EINTR)
				continue;
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(saved),
				    _("cannot get random bytes: %s"),
				    g_strerror(saved));
			return NULL;
		}
		got += (gsize)n;
	}
	b64 = g_base64_encode(buf, sizeof(buf));
	memset(buf, 0, sizeof(buf));
	len = strlen(b64);
	while (len > 0 && b64[len - 1] == '=')
		b64[--len] = '\0';
	g_strdelimit(b64, "+", '-');
	g_strdelimit(b64, "/", '_');
	return g_steal_pointer(&b64);
}

static void
stat_remember(CodechatAccounts *self, const struct stat *st)
{
	self->exists = st != NULL;
	self->dev = st != NULL ? st->st_dev : 0;
	self->ino = st != NULL ? st->st_ino : 0;
	self->size = st != NULL ? st->st_size : 0;
	self->mtime_ns = st != NULL ? (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec
				    : 0;
	self->ctime_ns = st != NULL ? (gint64)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec
				    : 0;
}

static gboolean
stat_changed(CodechatAccounts *self, const struct stat *st)
{
	if (st == NULL)
		return self->exists;
	return !self->exists || self->dev != st->st_dev || self->ino != st->st_ino ||
	       self->size != st->st_size ||
	       self->mtime_ns != (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec ||
	       self->ctime_ns != (gint64)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* reads the file into a new table; a missing file is no accounts */
static GHashTable *
accounts_read(CodechatAccounts *self, struct stat *st_out, gboolean *exists, GError **error)
{
	g_autoptr(GHashTable) table =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)account_free);
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *data = NULL;
	g_auto(GStrv) keys = NULL;
	gsize len = 0;

	/* stat first: a change after it is seen by the next refresh */
	*exists = g_stat(self->path, st_out) == 0;
	if (!g_file_get_contents(self->path, &data, &len, &error_local)) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			*exists = FALSE;
			return g_steal_pointer(&table);
		}
		g_propagate_error(error, g_steal_pointer(&error_local));
		return NULL;
	}
	if (!g_key_file_load_from_data(file, data, len, G_KEY_FILE_NONE, &error_local)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_INVALID_DATA,
			    "%s: %s",
			    self->path,
			    error_local->message);
		return NULL;
	}
	keys = g_key_file_get_keys(file, ACCOUNTS_GROUP, NULL, NULL);
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
		g_autofree gchar *hash = g_key_file_get_string(file, ACCOUNTS_GROUP, keys[i], NULL);
		Account *account;

		if (!codechat_validate_nick(keys[i], NULL) || !hash_is_valid(hash)) {
			g_warning("%s: ignoring the malformed entry of %s", self->path, keys[i]);
			continue;
		}
		account = g_new0(Account, 1);
		account->nick = g_strdup(keys[i]);
		account->hash = g_steal_pointer(&hash);
		g_hash_table_replace(table, codechat_nick_fold(keys[i]), account);
	}
	return g_steal_pointer(&table);
}

/**
 * codechat_accounts_load:
 *
 * Reads the accounts file.  On error the accounts read before stay.
 */
gboolean
codechat_accounts_load(CodechatAccounts *self, GError **error)
{
	struct stat st;
	gboolean exists = FALSE;
	GHashTable *table;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), FALSE);

	table = accounts_read(self, &st, &exists, error);
	if (table == NULL)
		return FALSE;
	g_hash_table_unref(self->accounts);
	self->accounts = table;
	stat_remember(self, exists ? &st : NULL);
	return TRUE;
}

/**
 * codechat_accounts_refresh:
 *
 * Re-reads the file if it changed since the last load and emits ::changed
 * then.  A file that cannot be read keeps the accounts as they were.
 * Returns: %TRUE if the accounts were read anew
 */
gboolean
codechat_accounts_refresh(CodechatAccounts *self)
{
	struct stat st;
	gboolean exists;
	g_autoptr(GError) error = NULL;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), FALSE);

	exists = g_stat(self->path, &st) == 0;
	if (!stat_changed(self, exists ? &st : NULL))
		return FALSE;
	if (!codechat_accounts_load(self, &error)) {
		g_warning("cannot read the accounts, keeping the %u known: %s",
			  g_hash_table_size(self->accounts),
			  error->message);
		return FALSE;
	}
	g_info("accounts re-read: %u", g_hash_table_size(self->accounts));
	g_signal_emit(self, signals[SIGNAL_CHANGED], 0);
	return TRUE;
}

static void
monitor_changed_cb(GFileMonitor *monitor,
		   GFile *file,
		   GFile *other_file,
		   GFileMonitorEvent event,
		   gpointer user_data)
{
	CodechatAccounts *self = user_data;
	codechat_accounts_refresh(self);
}

/**
 * codechat_accounts_watch:
 *
 * Refreshes the accounts whenever the file changes, so that `codechatd
 * user remove` ends the sessions of that nick at once.
 */
gboolean
codechat_accounts_watch(CodechatAccounts *self, GError **error)
{
	g_autoptr(GFile) file = NULL;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), FALSE);

	if (self->monitor != NULL)
		return TRUE;
	file = g_file_new_for_path(self->path);
	self->monitor = g_file_monitor_file(file, G_FILE_MONITOR_WATCH_MOVES, NULL, error);
	if (self->monitor == NULL)
		return FALSE;
	g_signal_connect_object(self->monitor, "changed", G_CALLBACK(monitor_changed_cb), self, 0);
	return TRUE;
}

const gchar *
codechat_accounts_get_path(CodechatAccounts *self)
{
	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), NULL);
	return self->path;
}

guint
codechat_accounts_get_n_accounts(CodechatAccounts *self)
{
	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), 0);
	return g_hash_table_size(self->accounts);
}

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
	return g_ascii_strcasecmp(*(const gchar *const *)a, *(const gchar *const *)b);
}

/**
 * codechat_accounts_list:
 *
 * Returns: (transfer full): the nicks with an account, sorted
 */
GStrv
codechat_accounts_list(CodechatAccounts *self)
{
	g_autoptr(GPtrArray) nicks = g_ptr_array_new();
	GHashTableIter iter;
	Account *account;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), NULL);

	g_hash_table_iter_init(&iter, self->accounts);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&account))
		g_ptr_array_add(nicks, g_strdup(account->nick));
	g_ptr_array_sort(nicks, compare_strings);
	g_ptr_array_add(nicks, NULL);
	return (GStrv)g_ptr_array_free(g_steal_pointer(&nicks), FALSE);
}

/**
 * codechat_accounts_lookup_hash:
 *
 * Returns: (nullable): the stored hash of @nick's token (nicks differing
 * only in case are the same), %NULL if @nick has no account
 */
const gchar *
codechat_accounts_lookup_hash(CodechatAccounts *self, const gchar *nick)
{
	g_autofree gchar *fold = NULL;
	Account *account;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), NULL);

	fold = codechat_nick_fold(nick);
	account = g_hash_table_lookup(self->accounts, fold);
	return account != NULL ? account->hash : NULL;
}

/**
 * codechat_accounts_authenticate:
 * @token: (nullable): what the client sent
 *
 * Returns: (nullable): the stored hash if @token is @nick's, else %NULL
 */
const gchar *
codechat_accounts_authenticate(CodechatAccounts *self, const gchar *nick, const gchar *token)
{
	static const gchar no_account[] = HASH_PREFIX
	    "0000000000000000000000000000000000000000000000000000000000000000";
	const gchar *stored;
	g_autofree gchar *hash = NULL;
	gboolean equal;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), NULL);

	stored = codechat_accounts_lookup_hash(self, nick);
	/* the same work whether or not the nick has an account */
	hash = token_hash(token != NULL ? token : "");
	equal = hash_equal(hash, stored != NULL ? stored : no_account);
	if (stored == NULL || token == NULL || token[0] == '\0' || !equal)
		return NULL;
	return stored;
}

/* `codechatd user` processes take DIR/accounts.lock around their
 * read-modify-write of the file; the daemon only reads it */
static gint
accounts_lock(CodechatAccounts *self, GError **error)
{
	gint fd;

	if (g_mkdir_with_parents(self->dir, 0700) != 0) {
		gint saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    _("cannot create %s: %s"),
			    self->dir,
			    g_strerror(saved));
		return -1;
	}
	fd = g_open(self->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		gint saved = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    _("cannot open %s: %s"),
			    self->lock_path,
			    g_strerror(saved));
		return -1;
	}
	while (flock(fd, LOCK_EX) != 0) {
		gint saved = errno;
		if (saved == EINTR)
			continue;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(saved),
			    _("cannot lock %s: %s"),
			    self->lock_path,
			    g_strerror(saved));
		close(fd);
		return -1;
	}
	return fd;
}

/* written to a temporary file with mode 0600, then renamed over the old */
static gboolean
accounts_write(CodechatAccounts *self, GError **error)
{
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_auto(GStrv) nicks = codechat_accounts_list(self);
	g_autofree gchar *data = NULL;
	gsize len = 0;

	g_key_file_set_comment(file,
			       NULL,
			       NULL,
			       " codechatd accounts: nick=sha256 of the token.\n"
			       " Edit with codechatd user add|list|remove NICK.",
			       NULL);
	for (guint i = 0; nicks[i] != NULL; i++)
		g_key_file_set_string(file,
				      ACCOUNTS_GROUP,
				      nicks[i],
				      codechat_accounts_lookup_hash(self, nicks[i]));
	data = g_key_file_to_data(file, &len, NULL);
	return g_file_set_contents_full(self->path,
					data,
					(gssize)len,
					G_FILE_SET_CONTENTS_CONSISTENT,
					0600,
					error);
}

/**
 * codechat_accounts_add:
 *
 * Adds an account for @nick with a new random token.  A nick that has an
 * account already (in any case) is an error, %G_IO_ERROR_EXISTS.
 *
 * Returns: (transfer full): the token, to be shown once and never stored
 */
gchar *
codechat_accounts_add(CodechatAccounts *self, const gchar *nick, GError **error)
{
	g_autofree gchar *token = NULL;
	const gchar *existing;
	Account *account;
	gint fd;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), NULL);

	if (!codechat_validate_nick(nick, error))
		return NULL;
	fd = accounts_lock(self, error);
	if (fd < 0)
		return NULL;
	if (!codechat_accounts_load(self, error)) {
		close(fd);
		return NULL;
	}
	existing = codechat_accounts_lookup_hash(self, nick);
	if (existing != NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_EXISTS,
			    _("%s has an account already"),
			    nick);
		close(fd);
		return NULL;
	}
	token = token_new(error);
	if (token == NULL) {
		close(fd);
		return NULL;
	}
	account = g_new0(Account, 1);
	account->nick = g_strdup(nick);
	account->hash = token_hash(token);
	g_hash_table_replace(self->accounts, codechat_nick_fold(nick), account);
	if (!accounts_write(self, error)) {
		close(fd);
		return NULL;
	}
	close(fd);
	return g_steal_pointer(&token);
}

/**
 * codechat_accounts_remove:
 *
 * Removes @nick's account; %G_IO_ERROR_NOT_FOUND if it has none.
 */
gboolean
codechat_accounts_remove(CodechatAccounts *self, const gchar *nick, GError **error)
{
	g_autofree gchar *fold = NULL;
	gboolean ok;
	gint fd;

	g_return_val_if_fail(CODECHAT_IS_ACCOUNTS(self), FALSE);

	if (!codechat_validate_nick(nick, error))
		return FALSE;
	fd = accounts_lock(self, error);
	if (fd < 0)
		return FALSE;
	if (!codechat_accounts_load(self, error)) {
		close(fd);
		return FALSE;
	}
	fold = codechat_nick_fold(nick);
	if (!g_hash_table_remove(self->accounts, fold)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("%s has no account"), nick);
		close(fd);
		return FALSE;
	}
	ok = accounts_write(self, error);
	close(fd);
	return ok;
}

static void
codechat_accounts_finalize(GObject *object)
{
	CodechatAccounts *self = CODECHAT_ACCOUNTS(object);

	if (self->monitor != NULL)
		g_file_monitor_cancel(self->monitor);
	g_clear_object(&self->monitor);
	g_clear_pointer(&self->accounts, g_hash_table_unref);
	g_free(self->dir);
	g_free(self->path);
	g_free(self->lock_path);
	G_OBJECT_CLASS(codechat_accounts_parent_class)->finalize(object);
}

static void
codechat_accounts_class_init(CodechatAccountsClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->finalize = codechat_accounts_finalize;

	/**
	 * CodechatAccounts::changed:
	 *
	 * The accounts file was read anew.
	 */
	signals[SIGNAL_CHANGED] = g_signal_new("changed",
					       G_TYPE_FROM_CLASS(klass),
					       G_SIGNAL_RUN_LAST,
					       0,
					       NULL,
					       NULL,
					       NULL,
					       G_TYPE_NONE,
					       0);
}

static void
codechat_accounts_init(CodechatAccounts *self)
{
	self->accounts =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)account_free);
}

/**
 * codechat_accounts_new:
 * @data_dir: the daemon's data dir
 *
 * Returns: (transfer full): the accounts of @data_dir, not read yet
 */
CodechatAccounts *
codechat_accounts_new(const gchar *data_dir)
{
	CodechatAccounts *self = g_object_new(CODECHAT_TYPE_ACCOUNTS, NULL);

	self->dir = g_strdup(data_dir);
	self->path = g_build_filename(data_dir, "accounts", NULL);
	self->lock_path = g_build_filename(data_dir, "accounts.lock", NULL);
	return self;
}
