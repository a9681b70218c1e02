/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <libsecret/secret.h>
#include <string.h>

#include "codechat-error.h"
#include "codechat-protocol.h"
#include "codechat-settings.h"

/**
 * The client's settings live in GSettings (io.github.codechat.Codechat);
 * its secret, the account token, never does: it lives in the Secret
 * Service when one answers on the session bus, else in a 0600 key file in
 * the user's config dir, one group per server and one key per nick.
 *
 * Without the schema (an uninstalled build run without GSETTINGS_SCHEMA_DIR,
 * a container) the client works from flags, environment and built-in
 * defaults, and says so once at debug level.
 */

static GSettings *
settings_new(void)
{
	GSettingsSchemaSource *source = g_settings_schema_source_get_default();
	g_autoptr(GSettingsSchema) schema = NULL;
	g_autoptr(GSettingsBackend) backend = NULL;
	GSettings *settings;

	if (source != NULL)
		schema = g_settings_schema_source_lookup(source, APPLICATION_ID, TRUE);
	if (schema == NULL) {
		g_debug("no GSettings schema %s installed (GSETTINGS_SCHEMA_DIR=%s): "
			"using flags, environment and built-in defaults",
			APPLICATION_ID,
			g_getenv("GSETTINGS_SCHEMA_DIR") != NULL ? g_getenv("GSETTINGS_SCHEMA_DIR")
								 : "unset");
		return NULL;
	}
	settings = g_settings_new_full(schema, NULL, NULL);
	g_object_get(settings, "backend", &backend, NULL);
	if (backend != NULL &&
	    g_strcmp0(G_OBJECT_TYPE_NAME(backend), "GMemorySettingsBackend") == 0)
		g_debug("GSettings has no storage (its memory backend; no dconf?): "
			"using flags, environment and the schema's defaults");
	return settings;
}

/**
 * codechat_settings_get:
 *
 * Returns: (transfer none) (nullable): the settings, or %NULL when the
 * schema is not installed
 */
GSettings *
codechat_settings_get(void)
{
	static gsize once = 0;
	static GSettings *settings = NULL;

	if (g_once_init_enter(&once)) {
		settings = settings_new();
		g_once_init_leave(&once, 1);
	}
	return settings;
}

static gint
compare_keys(gconstpointer a, gconstpointer b, gpointer user_data)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

/* the schema's keys, sorted (GSettings keeps no order) */
GStrv
codechat_settings_list_keys(GSettings *settings)
{
	g_autoptr(GSettingsSchema) schema = NULL;
	GStrv keys;

	g_object_get(settings, "settings-schema", &schema, NULL);
	keys = g_settings_schema_list_keys(schema);
	g_qsort_with_data(keys, (gint)g_strv_length(keys), sizeof(gchar *), compare_keys, NULL);
	return keys;
}

/* whether what is set is kept: not without a schema, nor in memory */
gboolean
codechat_settings_check_writable(GSettings *settings, GError **error)
{
	g_autoptr(GSettingsBackend) backend = NULL;

	if (settings == NULL) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_NOT_SUPPORTED,
			    _("the GSettings schema %s is not installed; install codechat, or run "
			      "it from the build tree with “meson devenv”"),
			    APPLICATION_ID);
		return FALSE;
	}
	g_object_get(settings, "backend", &backend, NULL);
	if (backend != NULL &&
	    g_strcmp0(G_OBJECT_TYPE_NAME(backend), "GMemorySettingsBackend") == 0) {
		g_set_error_literal(
		    error,
		    G_IO_ERROR,
		    G_IO_ERROR_NOT_SUPPORTED,
		    _("settings cannot be saved: GSettings has no storage here "
		      "(install dconf-gsettings-backend, or set GSETTINGS_BACKEND=keyfile)"));
		return FALSE;
	}
	return TRUE;
}

static gboolean
check_kept(GSettings *settings, const gchar *key, GVariant *expected, GError **error)
{
	g_autoptr(GVariant) now = NULL;

	/* dconf writes through its D-Bus service and takes a failed write
	 * back: ask again once the write is done */
	g_settings_sync();
	now = expected != NULL ? g_settings_get_value(settings, key)
			       : g_settings_get_user_value(settings, key);
	if (expected != NULL ? g_variant_equal(now, expected) : now == NULL)
		return TRUE;
	g_set_error(error,
		    G_IO_ERROR,
		    G_IO_ERROR_FAILED,
		    _("the setting “%s” was not saved: GSettings could not write it (dconf needs "
		      "a D-Bus session bus; outside a desktop session, set "
		      "GSETTINGS_BACKEND=keyfile)"),
		    key);
	return FALSE;
}

/* writes @value and checks that the backend kept it */
gboolean
codechat_settings_set(GSettings *settings, const gchar *key, GVariant *value, GError **error)
{
	g_autoptr(GVariant) owned = g_variant_take_ref(value); /* (transfer full) or floating */

	if (!g_settings_set_value(settings, key, owned)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_NOT_SUPPORTED,
			    _("the setting “%s” cannot be changed here"),
			    key);
		return FALSE;
	}
	return check_kept(settings, key, owned, error);
}

gboolean
codechat_settings_reset(GSettings *settings, const gchar *key, GError **error)
{
	g_settings_reset(settings, key);
	return check_kept(settings, key, NULL, error);
}

/* (nullable): a string key's value, %NULL when empty or without schema */
gchar *
codechat_settings_get_string(const gchar *key)
{
	GSettings *settings = codechat_settings_get();
	g_autofree gchar *value = NULL;

	if (settings == NULL)
		return NULL;
	value = g_settings_get_string(settings, key);
	if (value[0] == '\0')
		return NULL;
	return g_steal_pointer(&value);
}

gboolean
codechat_settings_get_uint(const gchar *key, guint *value)
{
	GSettings *settings = codechat_settings_get();

	if (settings == NULL)
		return FALSE;
	*value = g_settings_get_uint(settings, key);
	return TRUE;
}

/**
 * codechat_settings_check_server_url:
 * @normalized: (out) (optional): @value with the protocol's path when it
 *   had none
 *
 * A ws:// or wss:// URL with a host.
 */
gboolean
codechat_settings_check_server_url(const gchar *value, gchar **normalized, GError **error)
{
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GError) error_local = NULL;
	const gchar *scheme;
	const gchar *path;

	uri = g_uri_parse(value, G_URI_FLAGS_NONE, &error_local);
	if (uri == NULL) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("“%s” is not a valid server URL: %s"),
			    value,
			    error_local->message);
		return FALSE;
	}
	scheme = g_uri_get_scheme(uri);
	if (g_ascii_strcasecmp(scheme, "ws") != 0 && g_ascii_strcasecmp(scheme, "wss") != 0) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("“%s” is not a ws:// or wss:// URL"),
			    value);
		return FALSE;
	}
	if (g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0') {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("“%s” names no host"),
			    value);
		return FALSE;
	}
	/* a password in the URL would end up in logs and in GSettings: the
	 * account token is how codechat signs in */
	if (g_uri_get_userinfo(uri) != NULL) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("“%s” holds a user name or password; give the account token with "
			      "“codechat init --token” or CODECHAT_TOKEN instead"),
			    value);
		return FALSE;
	}
	if (normalized == NULL)
		return TRUE;
	path = g_uri_get_path(uri);
	/* ws://host:7373 means the protocol's endpoint */
	if (path[0] == '\0' || g_strcmp0(path, "/") == 0) {
		g_autoptr(GUri) full = g_uri_build(G_URI_FLAGS_NONE,
						   scheme,
						   g_uri_get_userinfo(uri),
						   g_uri_get_host(uri),
						   g_uri_get_port(uri),
						   CODECHAT_WS_PATH,
						   g_uri_get_query(uri),
						   NULL);
		*normalized = g_uri_to_string(full);
		return TRUE;
	}
	*normalized = g_strdup(value);
	return TRUE;
}

static gchar *
range_choices(GVariant *range)
{
	g_autoptr(GVariant) values = NULL;
	g_autofree const gchar **strv = NULL;
	const gchar *type;

	g_variant_get(range, "(&sv)", &type, &values);
	if (g_strcmp0(type, "enum") != 0 ||
	    !g_variant_is_of_type(values, G_VARIANT_TYPE_STRING_ARRAY))
		return g_strdup("");
	strv = g_variant_get_strv(values, NULL);
	return g_strjoinv(", ", (gchar **)strv);
}

/* a message of ours for what the protocol's validation said */
static gboolean
check_name(gboolean (*validate)(const gchar *, GError **),
	   const gchar *key,
	   const gchar *text,
	   GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (validate(text, &error_local))
		return TRUE;
	g_set_error(error,
		    CODECHAT_ERROR,
		    CODECHAT_ERROR_INVALID_ARGUMENT,
		    _("“%s” is not a valid value for %s: %s"),
		    text,
		    key,
		    error_local->message);
	return FALSE;
}

/* whether the schema has @key; if not, an error that lists those it has */
gboolean
codechat_settings_check_key(GSettings *settings, const gchar *key, GError **error)
{
	g_autoptr(GSettingsSchema) schema = NULL;
	g_auto(GStrv) keys = NULL;
	g_autofree gchar *list = NULL;

	g_object_get(settings, "settings-schema", &schema, NULL);
	if (g_settings_schema_has_key(schema, key))
		return TRUE;
	keys = codechat_settings_list_keys(settings);
	list = g_strjoinv(", ", keys);
	g_set_error(error,
		    CODECHAT_ERROR,
		    CODECHAT_ERROR_INVALID_ARGUMENT,
		    _("no setting “%s”; the settings are %s"),
		    key,
		    list);
	return FALSE;
}

/**
 * codechat_settings_parse_value:
 * @text: what the user typed
 *
 * Turns @text into a value for @key, checked against the schema (types,
 * enum choices, ranges) and against what the protocol accepts (URL, nick,
 * room).
 *
 * Returns: (transfer full) (nullable): a floating-free value, or %NULL with
 * @error set (%CODECHAT_ERROR_INVALID_ARGUMENT)
 */
GVariant *
codechat_settings_parse_value(GSettings *settings,
			      const gchar *key,
			      const gchar *text,
			      GError **error)
{
	g_autoptr(GSettingsSchema) schema = NULL;
	g_autoptr(GSettingsSchemaKey) schema_key = NULL;
	g_autoptr(GVariant) range = NULL;
	g_autoptr(GVariant) value = NULL;
	const GVariantType *type;
	const gchar *range_type;

	if (!codechat_settings_check_key(settings, key, error))
		return NULL;
	g_object_get(settings, "settings-schema", &schema, NULL);
	schema_key = g_settings_schema_get_key(schema, key);
	type = g_settings_schema_key_get_value_type(schema_key);
	range = g_settings_schema_key_get_range(schema_key);
	g_variant_get(range, "(&sv)", &range_type, NULL);

	if (g_variant_type_equal(type, G_VARIANT_TYPE_STRING)) {
		if (g_strcmp0(key, CODECHAT_SETTINGS_SERVER_URL) == 0) {
			g_autofree gchar *normalized = NULL;
			if (!codechat_settings_check_server_url(text, &normalized, error))
				return NULL;
			value = g_variant_ref_sink(g_variant_new_string(normalized));
		} else if (g_strcmp0(key, CODECHAT_SETTINGS_NICKNAME) == 0) {
			/* empty: the login name */
			if (text[0] != '\0' &&
			    !check_name(codechat_validate_nick, key, text, error))
				return NULL;
		} else if (g_strcmp0(key, CODECHAT_SETTINGS_DEFAULT_ROOM) == 0) {
			if (!check_name(codechat_validate_room, key, text, error))
				return NULL;
		}
		if (value == NULL)
			value = g_variant_ref_sink(g_variant_new_string(text));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_UINT32)) {
		guint64 number = 0;
		if (!g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT32, &number, NULL)) {
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("%s takes a whole number, not “%s”"),
				    key,
				    text);
			return NULL;
		}
		value = g_variant_ref_sink(g_variant_new_uint32((guint32)number));
	} else {
		g_autoptr(GError) error_local = NULL;
		value = g_variant_parse(type, text, NULL, NULL, &error_local);
		if (value == NULL) {
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("“%s” is not a valid value for %s: %s"),
				    text,
				    key,
				    error_local->message);
			return NULL;
		}
	}

	if (!g_settings_schema_key_range_check(schema_key, value)) {
		if (g_strcmp0(range_type, "enum") == 0) {
			g_autofree gchar *choices = range_choices(range);
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("“%s” is not a valid value for %s: choose one of %s"),
				    text,
				    key,
				    choices);
		} else if (g_strcmp0(range_type, "range") == 0) {
			g_autoptr(GVariant) bounds = NULL;
			g_autoptr(GVariant) min = NULL;
			g_autoptr(GVariant) max = NULL;
			g_autofree gchar *low = NULL;
			g_autofree gchar *high = NULL;
			g_variant_get(range, "(&sv)", NULL, &bounds);
			min = g_variant_get_child_value(bounds, 0);
			max = g_variant_get_child_value(bounds, 1);
			low = g_variant_print(min, FALSE);
			high = g_variant_print(max, FALSE);
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("%s must be between %s and %s, not %s"),
				    key,
				    low,
				    high,
				    text);
		} else {
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("“%s” is not a valid value for %s"),
				    text,
				    key);
		}
		return NULL;
	}
	return g_steal_pointer(&value);
}

/* strings as they are, other values in GVariant text */
gchar *
codechat_settings_value_to_string(GVariant *value)
{
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
		return g_variant_dup_string(value, NULL);
	return g_variant_print(value, FALSE);
}

/* the token ------------------------------------------------------------ */

static const SecretSchema *
token_schema(void)
{
	static const SecretSchema schema = {
	    APPLICATION_ID ".Token",
	    SECRET_SCHEMA_NONE,
	    {
		{"server", SECRET_SCHEMA_ATTRIBUTE_STRING},
		{"nick", SECRET_SCHEMA_ATTRIBUTE_STRING},
		{NULL, 0},
	    },
	};
	return &schema;
}

/* whether a Secret Service answers: owned or activatable on the session
 * bus, asked with a short timeout so that a broken bus cannot hang us */
static gboolean
keyring_available(void)
{
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	gboolean owned = FALSE;

	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (bus == NULL) {
		g_debug("no Secret Service: no session bus: %s", error->message);
		return FALSE;
	}
	reply = g_dbus_connection_call_sync(bus,
					    "org.freedesktop.DBus",
					    "/org/freedesktop/DBus",
					    "org.freedesktop.DBus",
					    "NameHasOwner",
					    g_variant_new("(s)", "org.freedesktop.secrets"),
					    G_VARIANT_TYPE("(b)"),
					    G_DBUS_CALL_FLAGS_NONE,
					    2000,
					    NULL,
					    &error);
	if (reply == NULL) {
		g_debug("no Secret Service: %s", error->message);
		return FALSE;
	}
	g_variant_get(reply, "(b)", &owned);
	if (!owned) {
		g_autoptr(GVariant) names = NULL;
		g_autofree const gchar **strv = NULL;
		g_clear_pointer(&reply, g_variant_unref);
		reply = g_dbus_connection_call_sync(bus,
						    "org.freedesktop.DBus",
						    "/org/freedesktop/DBus",
						    "org.freedesktop.DBus",
						    "ListActivatableNames",
						    NULL,
						    G_VARIANT_TYPE("(as)"),
						    G_DBUS_CALL_FLAGS_NONE,
						    2000,
						    NULL,
						    &error);
		if (reply == NULL) {
			g_debug("no Secret Service: %s", error->message);
			return FALSE;
		}
		names = g_variant_get_child_value(reply, 0);
		strv = g_variant_get_strv(names, NULL);
		owned = g_strv_contains(strv, "org.freedesktop.secrets");
	}
	if (!owned)
		g_debug("no Secret Service on the session bus");
	return owned;
}

/* a Secret Service call, bounded: a keyring that wants to be unlocked where
 * nobody can answer its prompt (over ssh) must not hang every command */
#define KEYRING_TIMEOUT_S 15

typedef struct {
	GCancellable *cancellable; /* (owned) */
	gboolean done;
	gboolean ok;
	gchar *token; /* (owned) (nullable) */
	GError *error;
} KeyringCall;

static void
keyring_call_clear(KeyringCall *call)
{
	g_clear_object(&call->cancellable);
	g_clear_error(&call->error);
	if (call->token != NULL)
		memset(call->token, 0, strlen(call->token));
	g_clear_pointer(&call->token, g_free);
}

static void
keyring_lookup_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	KeyringCall *call = user_data;
	gchar *token = secret_password_lookup_finish(result, &call->error);

	if (token != NULL) {
		call->token = g_strdup(token);
		secret_password_free(token);
	}
	call->done = TRUE;
}

static void
keyring_store_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	KeyringCall *call = user_data;

	call->ok = secret_password_store_finish(result, &call->error);
	call->done = TRUE;
}

static gboolean
keyring_timeout_cb(gpointer user_data)
{
	g_debug("the Secret Service did not answer within %u s", KEYRING_TIMEOUT_S);
	g_cancellable_cancel(G_CANCELLABLE(user_data));
	return G_SOURCE_REMOVE;
}

/* runs @context until the call is done, cancelling it when it takes too long */
static void
keyring_call_wait(KeyringCall *call, GMainContext *context)
{
	GSource *timeout = g_timeout_source_new_seconds(KEYRING_TIMEOUT_S);

	g_source_set_callback(timeout, keyring_timeout_cb, call->cancellable, NULL);
	g_source_attach(timeout, context);
	while (!call->done)
		g_main_context_iteration(context, TRUE);
	g_source_destroy(timeout);
	g_source_unref(timeout);
}

/* $XDG_CONFIG_HOME/codechat/tokens */
gchar *
codechat_token_file_path(void)
{
	return g_build_filename(g_get_user_config_dir(), "codechat", "tokens", NULL);
}

/* a key file group for @server: a URL may hold “[” and “]” (IPv6), which
 * no group name may */
static gchar *
token_group(const gchar *server)
{
	return g_uri_escape_string(server, ":/?#@!$&'()*+,;=%", FALSE);
}

static gchar *
token_file_lookup(const gchar *server, const gchar *nick)
{
	g_autofree gchar *group = token_group(server);
	g_autofree gchar *path = codechat_token_file_path();
	g_autoptr(GKeyFile) keyfile = g_key_file_new();
	g_autoptr(GError) error = NULL;
	GStatBuf st;

	if (!g_key_file_load_from_file(keyfile, path, G_KEY_FILE_NONE, &error)) {
		if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_warning("cannot read %s: %s", path, error->message);
		return NULL;
	}
	if (g_stat(path, &st) == 0 && (st.st_mode & 0077) != 0)
		g_warning("%s can be read by other users; run “chmod 600 %s”", path, path);
	return g_key_file_get_string(keyfile, group, nick, NULL);
}

static gboolean
token_file_store(const gchar *server, const gchar *nick, const gchar *token, GError **error)
{
	g_autofree gchar *group = token_group(server);
	g_autofree gchar *path = codechat_token_file_path();
	g_autofree gchar *dir = g_path_get_dirname(path);
	g_autoptr(GKeyFile) keyfile = g_key_file_new();
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *data = NULL;
	gsize len = 0;

	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int saved = errno;
		g_set_error(error,
			    G_FILE_ERROR,
			    g_file_error_from_errno(saved),
			    _("cannot create %s: %s"),
			    dir,
			    g_strerror(saved));
		return FALSE;
	}
	if (!g_key_file_load_from_file(keyfile, path, G_KEY_FILE_KEEP_COMMENTS, &error_local)) {
		if (!g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
			g_propagate_prefixed_error(error,
						   g_steal_pointer(&error_local),
						   _("cannot read %s: "),
						   path);
			return FALSE;
		}
		g_key_file_set_comment(keyfile,
				       NULL,
				       NULL,
				       " codechat account tokens: [server URL] nick=token. Keep "
				       "this file private (mode 0600).",
				       NULL);
	}
	g_key_file_set_string(keyfile, group, nick, token);
	data = g_key_file_to_data(keyfile, &len, NULL);
	/* written whole under a temporary name, created 0600, then renamed */
	return g_file_set_contents_full(path,
					data,
					(gssize)len,
					G_FILE_SET_CONTENTS_CONSISTENT,
					0600,
					error);
}

/**
 * codechat_token_lookup:
 * @source: (out) (optional): where it came from
 *
 * The token for @nick on @server: `CODECHAT_TOKEN`, then the Secret
 * Service, then the tokens file.
 *
 * Returns: (transfer full) (nullable): the token
 */
gchar *
codechat_token_lookup(const gchar *server, const gchar *nick, CodechatTokenSource *source)
{
	const gchar *env = g_getenv("CODECHAT_TOKEN");
	gchar *token;

	if (source != NULL)
		*source = CODECHAT_TOKEN_SOURCE_NONE;
	if (env != NULL && env[0] != '\0') {
		if (source != NULL)
			*source = CODECHAT_TOKEN_SOURCE_ENVIRONMENT;
		return g_strdup(env);
	}
	if (keyring_available()) {
		KeyringCall call = {FALSE};
		g_autoptr(GMainContext) context = g_main_context_new();

		g_main_context_push_thread_default(context);
		secret_password_lookup(token_schema(),
				       call.cancellable = g_cancellable_new(),
				       keyring_lookup_cb,
				       &call,
				       "server",
				       server,
				       "nick",
				       nick,
				       NULL);
		keyring_call_wait(&call, context);
		g_main_context_pop_thread_default(context);
		if (call.token != NULL) {
			token = g_steal_pointer(&call.token);
			keyring_call_clear(&call);
			if (source != NULL)
				*source = CODECHAT_TOKEN_SOURCE_KEYRING;
			return token;
		}
		if (call.error != NULL)
			g_debug("Secret Service lookup failed: %s", call.error->message);
		keyring_call_clear(&call);
	}
	token = token_file_lookup(server, nick);
	if (token != NULL && source != NULL)
		*source = CODECHAT_TOKEN_SOURCE_FILE;
	return token;
}

/**
 * codechat_token_store:
 * @where: (out) (optional): where it went
 *
 * Keeps @token for @nick on @server in the Secret Service when one
 * answers, else in the tokens file.
 */
gboolean
codechat_token_store(const gchar *server,
		     const gchar *nick,
		     const gchar *token,
		     CodechatTokenSource *where,
		     GError **error)
{
	if (keyring_available()) {
		KeyringCall call = {FALSE};
		g_autoptr(GMainContext) context = g_main_context_new();
		g_autofree gchar *label =
		    g_strdup_printf(_("codechat token for %s on %s"), nick, server);

		g_main_context_push_thread_default(context);
		secret_password_store(token_schema(),
				      SECRET_COLLECTION_DEFAULT,
				      label,
				      token,
				      call.cancellable = g_cancellable_new(),
				      keyring_store_cb,
				      &call,
				      "server",
				      server,
				      "nick",
				      nick,
				      NULL);
		keyring_call_wait(&call, context);
		g_main_context_pop_thread_default(context);
		if (call.ok) {
			keyring_call_clear(&call);
			if (where != NULL)
				*where = CODECHAT_TOKEN_SOURCE_KEYRING;
			return TRUE;
		}
		g_debug("Secret Service store failed, using the tokens file: %s",
			call.error != NULL ? call.error->message : "unknown error");
		keyring_call_clear(&call);
	}
	if (!token_file_store(server, nick, token, error))
		return FALSE;
	if (where != NULL)
		*where = CODECHAT_TOKEN_SOURCE_FILE;
	return TRUE;
}
