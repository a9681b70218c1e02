/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "codechat-application.h"
#include "codechat-cmd.h"
#include "codechat-log.h"
#include "codechat-protocol.h"
#include "codechat-settings.h"

/**
 * CodechatApplication:
 *
 * `codechat [GLOBAL OPTIONS] COMMAND [ARGS]`.  local_command_line()
 * parses the global options and picks the command, so GApplication's own
 * option handling never runs; command_line() starts the command, which
 * holds the application while it works on the main loop and releases it
 * through codechat_application_finish().  g_application_run() resets its
 * status once the loop ran, so the exit status lives here.
 */

/* the global options, as given on one part of the command line; they are
 * accepted before the command and, for convenience, after it */
typedef struct {
	gchar *server;
	gchar *nick;
	gchar *color;
	gchar *log_format;
	gchar *ca_file;
	gboolean json;
	gboolean verbose;
	gboolean quiet;
} GlobalOptions;

struct _CodechatApplication {
	GApplication parent_instance;
	GlobalOptions opts;		/* merged from both parts */
	gchar *server;			/* (owned) resolved: flag, env, default */
	gchar *nick;			/* (owned) resolved */
	gchar *token;			/* (owned) (nullable) a secret: never logged */
	gchar *room;			/* (owned) resolved default room */
	CodechatOutput *output;		/* (owned) (nullable) */
	const CodechatCommand *command; /* (unowned) (nullable) */
	GStrv command_argv;		/* (owned) (nullable) the command and its arguments */
	CodechatNotifyMode notify_mode;
	CodechatTokenSource token_source;
	gboolean token_resolved;
	guint history_limit;
	gint exit_status;
	gboolean finished;
};

G_DEFINE_FINAL_TYPE(CodechatApplication, codechat_application, G_TYPE_APPLICATION)

static const CodechatCommand commands[] = {
    {"init",
     NULL,
     N_("Set up codechat: the server, your nick and your token"),
     N_("Asks for the server URL, the nick and the account token when the\n"
	"standard input is a terminal, with the current settings as defaults;\n"
	"otherwise takes --server, --nick and --token alone. Checks that the\n"
	"server answers and accepts the nick before it saves anything: the server\n"
	"and nick in GSettings, the token in the Secret Service or, when none\n"
	"answers, in a file only you can read. “codechat --init” does the same.\n"
	"\n"
	"Example:\n"
	"  codechat init --server ws://chat.example.org:7373 --nick alice"),
     codechat_cmd_init},
    {"send",
     N_("[TEXT…]"),
     N_("Send a message to a room, or to a nick"),
     N_("The text comes from the arguments, joined by spaces, or else from the\n"
	"standard input. --code LANG sends it as a snippet in LANG; --file sends\n"
	"a file as a snippet, its language guessed from its name.\n"
	"Exits once the server acknowledged the message.\n"
	"\n"
	"Examples:\n"
	"  codechat send --room builds \"nightly build is green\"\n"
	"  git diff | codechat send --code diff\n"
	"  codechat send --to bob --file src/main.c"),
     codechat_cmd_send},
    {"history",
     NULL,
     N_("Print the past messages of a room, or of a direct conversation, oldest first"),
     N_("Without --before or --after, prints the latest page. --before ID pages\n"
	"back from a message, --after ID forward (--after 0 is the start);\n"
	"--with NICK reads the direct messages between you and NICK. A page has\n"
	"--limit messages, else the history-limit setting (50).\n"
	"\n"
	"Examples:\n"
	"  codechat history --room general --limit 20\n"
	"  codechat history --with bob --json"),
     codechat_cmd_history},
    {"watch",
     NULL,
     N_("Print messages as they arrive, until interrupted"),
     N_("Reconnects when the connection drops and resumes where it left off,\n"
	"so that no message is lost or printed twice. --notify also shows desktop\n"
	"notifications: of mentions and direct messages, or of every message with\n"
	"--notify=all; without it, the notify setting decides (off by default).\n"
	"\n"
	"Examples:\n"
	"  codechat watch --room general --room builds\n"
	"  codechat watch --json | jq -r .text"),
     codechat_cmd_watch},
    {"chat",
     NULL,
     N_("Chat interactively in a room"),
     N_("Shows the last messages of the room, then messages as they arrive,\n"
	"above the line you type (GNU readline: history, Tab completion).\n"
	"Lines are said in the current room; commands start with “/”:\n"
	"/join ROOM, /part [ROOM], /me ACTION, /msg NICK TEXT, /who, /rooms,\n"
	"/history [N], /code [LANG] (lines until a single “.”), /help, /quit.\n"
	"Ctrl-D or /quit leaves. After a drop it reconnects and resumes by\n"
	"itself; the prompt says (offline) meanwhile. Without a terminal, the\n"
	"lines come from the standard input, for scripts.\n"
	"\n"
	"Examples:\n"
	"  codechat chat --room dev\n"
	"  printf 'deploy done\\n/who\\n' | codechat chat --room ops"),
     codechat_cmd_chat},
    {"rooms",
     NULL,
     N_("List the rooms"),
     N_("Each room with its member count and last message id.\n"
	"\n"
	"Example:\n"
	"  codechat rooms --json"),
     codechat_cmd_rooms},
    {"who",
     NULL,
     N_("List the members of a room"),
     N_("Example:\n"
	"  codechat who --room general"),
     codechat_cmd_who},
    {"status",
     NULL,
     N_("Show the server, its limits and this session"),
     N_("Connects, prints what the server says about itself and its rooms, and\n"
	"the server and nick this client uses.\n"
	"\n"
	"Example:\n"
	"  codechat --server ws://chat.example.org:7373 status"),
     codechat_cmd_status},
    {"config",
     N_("list | get KEY | set KEY VALUE | reset KEY"),
     N_("Show or change the settings"),
     N_("The settings live in GSettings (io.github.codechat.Codechat):\n"
	"  server-url     ws:// or wss:// URL of the server\n"
	"  nickname       your nick (empty: the login name)\n"
	"  default-room   the room used without --room (general)\n"
	"  notify         desktop notifications: off, mentions or all\n"
	"  color          auto, always or never\n"
	"  history-limit  messages per page of history, 1 to 500 (50)\n"
	"Values are checked before they are saved. Options and environment\n"
	"variables win over these settings. The token is never kept here.\n"
	"\n"
	"Examples:\n"
	"  codechat config set default-room builds\n"
	"  codechat config get server-url\n"
	"  codechat config reset notify"),
     codechat_cmd_config},
};

static const CodechatCommand *
lookup_command(const gchar *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (g_strcmp0(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

static void
global_options_clear(GlobalOptions *opts)
{
	g_clear_pointer(&opts->server, g_free);
	g_clear_pointer(&opts->nick, g_free);
	g_clear_pointer(&opts->color, g_free);
	g_clear_pointer(&opts->log_format, g_free);
	g_clear_pointer(&opts->ca_file, g_free);
}

/* what one part of the command line said wins over what came before */
static void
global_options_merge(GlobalOptions *dst, GlobalOptions *src)
{
	if (src->server != NULL) {
		g_free(dst->server);
		dst->server = g_steal_pointer(&src->server);
	}
	if (src->nick != NULL) {
		g_free(dst->nick);
		dst->nick = g_steal_pointer(&src->nick);
	}
	if (src->color != NULL) {
		g_free(dst->color);
		dst->color = g_steal_pointer(&src->color);
	}
	if (src->log_format != NULL) {
		g_free(dst->log_format);
		dst->log_format = g_steal_pointer(&src->log_format);
	}
	if (src->ca_file != NULL) {
		g_free(dst->ca_file);
		dst->ca_file = g_steal_pointer(&src->ca_file);
	}
	dst->json |= src->json;
	dst->verbose |= src->verbose;
	dst->quiet |= src->quiet;
}

#define N_GLOBAL_ENTRIES 8

static void
global_entries_init(GOptionEntry *entries, GlobalOptions *opts)
{
	const GOptionEntry template[N_GLOBAL_ENTRIES + 1] = {
	    {"server",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &opts->server,
	     N_("Server URL (ws:// or wss://)"),
	     N_("URL")},
	    {"nick", 0, 0, G_OPTION_ARG_STRING, &opts->nick, N_("Nick to use"), N_("NAME")},
	    {"json",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &opts->json,
	     N_("Print one JSON object a line, for scripts"),
	     NULL},
	    {"color",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &opts->color,
	     N_("Use colours: auto, always or never"),
	     N_("WHEN")},
	    {"verbose",
	     'v',
	     0,
	     G_OPTION_ARG_NONE,
	     &opts->verbose,
	     N_("Print debugging information"),
	     NULL},
	    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &opts->quiet, N_("Print only errors"), NULL},
	    {"log-format",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &opts->log_format,
	     N_("Log as text or json"),
	     N_("FORMAT")},
	    {"ca-file",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &opts->ca_file,
	     N_("Trust the CA certificates in this PEM file for wss:// instead of the system's"),
	     N_("FILE")},
	    {NULL},
	};

	memcpy(entries, template, sizeof(template));
}

static gchar *
commands_summary(void)
{
	g_autoptr(GString) str = g_string_new(_("Commands:"));

	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
		g_string_append_printf(str,
				       "\n  %-10s%s",
				       commands[i].name,
				       _(commands[i].summary));
	return g_string_free(g_steal_pointer(&str), FALSE);
}

static gchar *
environment_help(void)
{
	return g_strdup_printf(
	    _("Settings come from the options, then the environment, then GSettings\n"
	      "(see “codechat config --help”), then the defaults.\n"
	      "\n"
	      "Environment:\n"
	      "  CODECHAT_SERVER         server URL (default %s)\n"
	      "  CODECHAT_NICK           nick (default: the login name)\n"
	      "  CODECHAT_ROOM           default room (default: general)\n"
	      "  CODECHAT_TOKEN          account token, sent with hello; else the token\n"
	      "                          saved by “codechat init”\n"
	      "  CODECHAT_NOTIFY         desktop notifications: off, mentions or all\n"
	      "  CODECHAT_COLOR          auto, always or never\n"
	      "  CODECHAT_HISTORY_LIMIT  messages per page of history\n"
	      "  CODECHAT_LOG_FORMAT     text or json\n"
	      "  CODECHAT_CA_FILE        CA certificates (PEM) to check wss:// servers\n"
	      "                          against instead of the system's\n"
	      "  NO_COLOR                no colours unless asked for\n"
	      "\n"
	      "Exit status: 0 success, 1 usage error, 2 cannot connect,\n"
	      "3 refused by the server, 4 other error.\n"
	      "Run “codechat COMMAND --help” for the options of a command."),
	    DEFAULT_SERVER_URL);
}

/* usage errors: a clear message and where to find help */
static void
print_usage_error(CodechatApplication *self, const gchar *message)
{
	if (self->command != NULL)
		g_printerr(_("codechat: %s\nTry “codechat %s --help” for more information.\n"),
			   message,
			   self->command->name);
	else
		g_printerr(_("codechat: %s\nTry “codechat --help” for more information.\n"),
			   message);
}

/* 0 ok, 1 usage, 2 cannot connect, 3 refused by the server, 4 other */
static gint
exit_status_for_error(const GError *error)
{
	if (error->domain == G_OPTION_ERROR)
		return 1;
	if (error->domain != CODECHAT_ERROR)
		return 4;
	switch (error->code) {
	case CODECHAT_ERROR_INVALID_ARGUMENT:
		return 1;
	case CODECHAT_ERROR_NOT_CONNECTED:
		return 2;
	case CODECHAT_ERROR_NOT_AUTHENTICATED:
	case CODECHAT_ERROR_AUTH_FAILED:
	case CODECHAT_ERROR_BAD_NICK:
	case CODECHAT_ERROR_NICK_TAKEN:
	case CODECHAT_ERROR_RATE_LIMITED:
	case CODECHAT_ERROR_TOO_LONG:
	case CODECHAT_ERROR_BAD_ROOM:
	case CODECHAT_ERROR_NOT_JOINED:
	case CODECHAT_ERROR_UNKNOWN_NICK:
	case CODECHAT_ERROR_OVERLOADED:
		return 3;
	default:
		return 4;
	}
}

static void
print_error(CodechatApplication *self, const GError *error)
{
	if (exit_status_for_error(error) == 1) {
		print_usage_error(self, error->message);
	} else if (error->domain == CODECHAT_ERROR && error->code < CODECHAT_ERROR_NOT_CONNECTED) {
		/* the server's words, and its code for scripts and bug reports */
		g_printerr("codechat: %s (%s)\n",
			   error->message,
			   codechat_error_to_code(error->code));
	} else {
		g_printerr("codechat: %s\n", error->message);
	}
}

/**
 * codechat_application_finish:
 * @error: (transfer full) (nullable): why the command failed
 *
 * Ends the command: prints @error, sets the exit status and releases the
 * application.  Only the first call counts.
 */
void
codechat_application_finish(CodechatApplication *self, GError *error)
{
	g_autoptr(GError) owned = error;

	g_return_if_fail(CODECHAT_IS_APPLICATION(self));

	if (self->finished)
		return;
	self->finished = TRUE;
	if (owned != NULL) {
		self->exit_status = exit_status_for_error(owned);
		print_error(self, owned);
		g_debug("exiting with status %d: %s", self->exit_status, owned->message);
	} else {
		self->exit_status = 0;
	}
	g_application_release(G_APPLICATION(self));
}

typedef struct {
	CodechatApplication *app; /* (owned) */
	GError *error;		  /* (owned) (nullable) */
} CloseData;

static void
close_done_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CloseData *data = user_data;

	codechat_connection_close_finish(CODECHAT_CONNECTION(source), result, NULL);
	codechat_application_finish(data->app, g_steal_pointer(&data->error));
	g_object_unref(data->app);
	g_free(data);
}

/**
 * codechat_application_close_and_finish:
 * @connection: (nullable): closed with 1000 first, so that the server sees a
 *   clean goodbye
 * @error: (transfer full) (nullable): as for codechat_application_finish()
 */
void
codechat_application_close_and_finish(CodechatApplication *self,
				      CodechatConnection *connection,
				      GError *error)
{
	CloseData *data;

	g_return_if_fail(CODECHAT_IS_APPLICATION(self));

	if (connection == NULL) {
		codechat_application_finish(self, error);
		return;
	}
	data = g_new0(CloseData, 1);
	data->app = g_object_ref(self);
	data->error = error;
	codechat_connection_close_async(connection, close_done_cb, data);
}

/* a line for people on stderr, unless --quiet */
void
codechat_application_note(CodechatApplication *self, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *message = NULL;

	g_return_if_fail(CODECHAT_IS_APPLICATION(self));

	if (self->opts.quiet)
		return;
	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);
	g_printerr("codechat: %s\n", message);
}

/* called by main() before anything is logged: until the options are
 * known, GLib's writer, on stderr */
void
codechat_application_setup_logging(void)
{
	/* stdout is for messages, and for scripts with --json */
	g_log_writer_default_set_use_stderr(TRUE);
}

static const gchar *
non_empty_env(const gchar *name)
{
	const gchar *value = g_getenv(name);

	if (value == NULL || value[0] == '\0')
		return NULL;
	return value;
}

static gboolean
invalid_env(const gchar *name, const gchar *value, const gchar *choices, GError **error)
{
	g_set_error(error,
		    CODECHAT_ERROR,
		    CODECHAT_ERROR_INVALID_ARGUMENT,
		    _("%s must be %s, not “%s”"),
		    name,
		    choices,
		    value);
	return FALSE;
}

/* the colour mode: --color, CODECHAT_COLOR, the `color` key, auto (which
 * honours NO_COLOR, as https://no-color.org/ asks of a default) */
static gboolean
resolve_color(CodechatApplication *self, CodechatColorMode *color, GError **error)
{
	const gchar *env = non_empty_env("CODECHAT_COLOR");
	g_autofree gchar *key = NULL;

	if (self->opts.color != NULL) {
		if (!codechat_color_mode_from_string(self->opts.color, color)) {
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    _("--color must be auto, always or never, not “%s”"),
				    self->opts.color);
			return FALSE;
		}
		return TRUE;
	}
	if (env != NULL) {
		/* Translators: auto, always and never are values: keep them */
		const gchar *choices = _("auto, always or never");

		if (!codechat_color_mode_from_string(env, color))
			return invalid_env("CODECHAT_COLOR", env, choices, error);
		return TRUE;
	}
	key = codechat_settings_get_string(CODECHAT_SETTINGS_COLOR);
	if (key == NULL || !codechat_color_mode_from_string(key, color))
		*color = CODECHAT_COLOR_AUTO;
	return TRUE;
}

/* CODECHAT_NOTIFY, the `notify` key, off; a command's flag comes first */
static gboolean
resolve_notify(CodechatApplication *self, GError **error)
{
	const gchar *env = non_empty_env("CODECHAT_NOTIFY");
	g_autofree gchar *key = NULL;

	self->notify_mode = CODECHAT_NOTIFY_OFF;
	if (env != NULL) {
		/* Translators: off, mentions and all are values: keep them */
		const gchar *choices = _("off, mentions or all");

		if (!codechat_notify_mode_from_string(env, &self->notify_mode))
			return invalid_env("CODECHAT_NOTIFY", env, choices, error);
		return TRUE;
	}
	key = codechat_settings_get_string(CODECHAT_SETTINGS_NOTIFY);
	if (key != NULL && !codechat_notify_mode_from_string(key, &self->notify_mode))
		self->notify_mode = CODECHAT_NOTIFY_OFF;
	return TRUE;
}

/* CODECHAT_HISTORY_LIMIT, the `history-limit` key, 50; history's --limit
 * comes first */
static gboolean
resolve_history_limit(CodechatApplication *self, GError **error)
{
	const gchar *env = non_empty_env("CODECHAT_HISTORY_LIMIT");
	guint value = 0;

	self->history_limit = CODECHAT_DEFAULT_HISTORY_LIMIT;
	if (env != NULL) {
		guint64 number = 0;
		if (!g_ascii_string_to_unsigned(env, 10, 1, CODECHAT_MAX_PAGE, &number, NULL)) {
			g_autofree gchar *range =
			    g_strdup_printf(_("a number from 1 to %d"), CODECHAT_MAX_PAGE);
			return invalid_env("CODECHAT_HISTORY_LIMIT", env, range, error);
		}
		self->history_limit = (guint)number;
		return TRUE;
	}
	if (codechat_settings_get_uint(CODECHAT_SETTINGS_HISTORY_LIMIT, &value) && value > 0)
		self->history_limit = value;
	return TRUE;
}

/* --ca-file, CODECHAT_CA_FILE, else the system's trust store */
static gboolean
resolve_ca_file(CodechatApplication *self, GError **error)
{
	const gchar *path = self->opts.ca_file;
	g_autoptr(GTlsDatabase) database = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *contents = NULL;
	g_autofree gchar *absolute = NULL;

	if (path == NULL)
		path = non_empty_env("CODECHAT_CA_FILE");
	if (path == NULL) {
		codechat_connection_set_tls_database(NULL);
		return TRUE;
	}
	/* GTlsFileDatabase wants an absolute path */
	absolute = g_canonicalize_filename(path, NULL);
	/* GTlsFileDatabase takes a file without a certificate in it */
	if (!g_file_get_contents(path, &contents, NULL, &error_local) ||
	    strstr(contents, "-----BEGIN CERTIFICATE-----") == NULL ||
	    (database = g_tls_file_database_new(absolute, &error_local)) == NULL) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("cannot use the CA file %s: %s"),
			    path,
			    error_local != NULL ? error_local->message
						: _("no PEM-encoded certificate in it"));
		return FALSE;
	}
	g_debug("checking server certificates against the CAs in %s", path);
	codechat_connection_set_tls_database(database);
	return TRUE;
}

/* every setting: the flag, then the environment, then GSettings, then the
 * built-in default */
static gboolean
resolve_settings(CodechatApplication *self, GError **error)
{
	CodechatColorMode color = CODECHAT_COLOR_AUTO;
	CodechatLogFormat log_format = CODECHAT_LOG_FORMAT_AUTO;
	g_autofree gchar *server_key = NULL;
	g_autofree gchar *nick_key = NULL;
	g_autofree gchar *room_key = NULL;
	const gchar *server = self->opts.server;
	const gchar *nick = self->opts.nick;
	const gchar *room;
	const gchar *log_env = non_empty_env("CODECHAT_LOG_FORMAT");

	if (self->opts.log_format != NULL &&
	    !codechat_log_format_from_string(self->opts.log_format, &log_format)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("--log-format must be text or json, not “%s”"),
			    self->opts.log_format);
		return FALSE;
	}
	if (self->opts.log_format == NULL && log_env != NULL &&
	    !codechat_log_format_from_string(log_env, &log_format))
		/* Translators: text and json are values: keep them */
		return invalid_env("CODECHAT_LOG_FORMAT", log_env, _("text or json"), error);
	/* the shared writer: our debug output with -v, everyone's with
	 * G_MESSAGES_DEBUG; this runs once per process */
	codechat_log_init("codechat", log_format);
	if (self->opts.verbose)
		g_log_set_debug_enabled(TRUE);

	if (!resolve_color(self, &color, error))
		return FALSE;
	if (!resolve_notify(self, error))
		return FALSE;
	if (!resolve_history_limit(self, error))
		return FALSE;
	if (!resolve_ca_file(self, error))
		return FALSE;

	if (server == NULL)
		server = non_empty_env("CODECHAT_SERVER");
	if (server == NULL)
		server = server_key = codechat_settings_get_string(CODECHAT_SETTINGS_SERVER_URL);
	if (server == NULL)
		server = DEFAULT_SERVER_URL;
	g_clear_pointer(&self->server, g_free);
	if (!codechat_settings_check_server_url(server, &self->server, error))
		return FALSE;

	/* a bad nick is for the server to refuse (exit status 3) */
	if (nick == NULL)
		nick = non_empty_env("CODECHAT_NICK");
	if (nick == NULL)
		nick = nick_key = codechat_settings_get_string(CODECHAT_SETTINGS_NICKNAME);
	if (nick == NULL) {
		const gchar *user = g_get_user_name();
		nick = codechat_validate_nick(user, NULL) ? user : "user";
	}
	g_free(self->nick);
	self->nick = g_strdup(nick);

	room = non_empty_env("CODECHAT_ROOM");
	if (room == NULL)
		room = room_key = codechat_settings_get_string(CODECHAT_SETTINGS_DEFAULT_ROOM);
	g_free(self->room);
	self->room = g_strdup(room != NULL ? room : "general");

	/* the token is looked up when a connection needs it */
	g_clear_pointer(&self->token, g_free);
	self->token_resolved = FALSE;

	g_clear_pointer(&self->output, codechat_output_free);
	self->output = codechat_output_new(self->opts.json, color);
	g_debug("settings: server %s, nick %s, default room %s, color %s, notify %s, "
		"history-limit %u",
		self->server,
		self->nick,
		self->room,
		color == CODECHAT_COLOR_ALWAYS	? "always"
		: color == CODECHAT_COLOR_NEVER ? "never"
						: "auto",
		codechat_notify_mode_to_string(self->notify_mode),
		self->history_limit);
	return TRUE;
}

/**
 * codechat_application_parse_options:
 * @entries: (nullable): the command's options
 * @stop_at_first_argument: whether the first argument ends the options
 *   (so that `send` can take text that looks like an option)
 * @args: (out) (transfer full): the positional arguments
 *
 * Parses the command's part of the command line, which may also carry
 * global options, and settles the settings.  Returns %FALSE when the
 * command is over: its help was printed, or a usage error reported.
 */
gboolean
codechat_application_parse_options(CodechatApplication *self,
				   const GOptionEntry *entries,
				   gboolean stop_at_first_argument,
				   GStrv *args)
{
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) argv = NULL;
	g_autofree gchar *help = NULL;
	g_autofree gchar *description = NULL;
	GlobalOptions opts = {NULL};
	GOptionEntry global_entries[N_GLOBAL_ENTRIES + 1];
	GOptionGroup *group;
	gboolean want_help = FALSE;
	const GOptionEntry help_entries[] = {
	    {"help", 'h', 0, G_OPTION_ARG_NONE, &want_help, N_("Show help options"), NULL},
	    {NULL},
	};

	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), FALSE);
	g_return_val_if_fail(self->command != NULL, FALSE);

	context = g_option_context_new(
	    self->command->parameter_string != NULL ? _(self->command->parameter_string) : NULL);
	g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
	g_option_context_set_help_enabled(context, FALSE);
	g_option_context_set_strict_posix(context, stop_at_first_argument);
	g_option_context_set_summary(context, _(self->command->summary));
	description =
	    g_strdup_printf("%s%s%s",
			    self->command->description != NULL ? _(self->command->description) : "",
			    self->command->description != NULL ? "\n\n" : "",
			    _("The global options (--server, --nick, --json, --color, -v, -q)\n"
			      "are also accepted here; see “codechat --help”."));
	g_option_context_set_description(context, description);

	g_option_context_add_main_entries(context, help_entries, GETTEXT_PACKAGE);
	if (entries != NULL)
		g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);

	global_entries_init(global_entries, &opts);
	group = g_option_group_new("global",
				   _("Global Options (also accepted before the command):"),
				   _("Show the global options"),
				   NULL,
				   NULL);
	g_option_group_set_translation_domain(group, GETTEXT_PACKAGE);
	g_option_group_add_entries(group, global_entries);
	g_option_context_add_group(context, group);

	argv = g_strdupv(self->command_argv);
	if (!g_option_context_parse_strv(context, &argv, &error)) {
		global_options_clear(&opts);
		codechat_application_finish(self,
					    g_error_new_literal(CODECHAT_ERROR,
								CODECHAT_ERROR_INVALID_ARGUMENT,
								error->message));
		return FALSE;
	}
	global_options_merge(&self->opts, &opts);
	global_options_clear(&opts);

	if (want_help) {
		g_autoptr(GString) text = NULL;
		g_autofree gchar *program = g_strdup_printf("\n  %s ", g_get_prgname());
		g_autofree gchar *usage =
		    g_strdup_printf("\n  %s %s ", g_get_prgname(), self->command->name);

		/* GOptionContext's usage line is "PRGNAME [OPTION…] PARAMETERS":
		 * name the command in it (g_set_prgname() may be called once) */
		help = g_option_context_get_help(context, TRUE, NULL);
		text = g_string_new(help);
		g_string_replace(text, program, usage, 1);
		g_print("%s", text->str);
		codechat_application_finish(self, NULL);
		return FALSE;
	}

	if (!resolve_settings(self, &error)) {
		codechat_application_finish(self, g_steal_pointer(&error));
		return FALSE;
	}
	/* argv[0] is the command's name */
	*args = g_strdupv(argv[0] != NULL ? argv + 1 : argv);
	return TRUE;
}

/* for commands that take no positional argument */
gboolean
codechat_application_check_no_args(CodechatApplication *self, GStrv args)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), FALSE);

	if (args == NULL || args[0] == NULL)
		return TRUE;
	codechat_application_finish(self,
				    g_error_new(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("unexpected argument “%s”"),
						args[0]));
	return FALSE;
}

static gboolean
codechat_application_local_command_line(GApplication *application,
					gchar ***arguments,
					gint *exit_status)
{
	CodechatApplication *self = CODECHAT_APPLICATION(application);
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *summary = commands_summary();
	g_autofree gchar *environment = environment_help();
	GlobalOptions opts = {NULL};
	GOptionEntry global_entries[N_GLOBAL_ENTRIES + 1];
	gboolean want_help = FALSE;
	gboolean want_version = FALSE;
	gboolean want_init = FALSE;
	const GOptionEntry entries[] = {
	    {"help", 'h', 0, G_OPTION_ARG_NONE, &want_help, N_("Show help options"), NULL},
	    {"version",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &want_version,
	     N_("Print the version and exit"),
	     NULL},
	    {"init",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &want_init,
	     N_("Set up codechat, as “codechat init” does"),
	     NULL},
	    {NULL},
	};
	const gchar *name;

	context = g_option_context_new(_("COMMAND [ARGS…]"));
	g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
	g_option_context_set_help_enabled(context, FALSE);
	/* the options of the command are the command's */
	g_option_context_set_strict_posix(context, TRUE);
	g_option_context_set_summary(context, summary);
	g_option_context_set_description(context, environment);
	global_entries_init(global_entries, &opts);
	g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
	g_option_context_add_main_entries(context, global_entries, GETTEXT_PACKAGE);

	*exit_status = 0;
	if (!g_option_context_parse_strv(context, arguments, &error)) {
		global_options_clear(&opts);
		print_usage_error(self, error->message);
		self->exit_status = *exit_status = 1;
		return TRUE;
	}
	global_options_merge(&self->opts, &opts);
	global_options_clear(&opts);

	if (want_help) {
		g_autofree gchar *help = g_option_context_get_help(context, TRUE, NULL);
		g_print("%s", help);
		return TRUE;
	}
	if (want_version) {
		g_print("codechat %s\n", PACKAGE_VERSION);
		return TRUE;
	}

	if (want_init) {
		/* codechat --init [OPTIONS]: the init command, its options after */
		g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
		g_strv_builder_add(builder, "init");
		if ((*arguments)[0] != NULL)
			g_strv_builder_addv(builder, (const gchar **)*arguments + 1);
		self->command = lookup_command("init");
		self->command_argv = g_strv_builder_end(builder);
		return FALSE;
	}

	name = (*arguments)[0] != NULL ? (*arguments)[1] : NULL;
	if (name == NULL) {
		print_usage_error(self, _("no command given"));
		self->exit_status = *exit_status = 1;
		return TRUE;
	}
	self->command = lookup_command(name);
	if (self->command == NULL) {
		g_autofree gchar *message = g_strdup_printf(_("unknown command “%s”"), name);
		print_usage_error(self, message);
		self->exit_status = *exit_status = 1;
		return TRUE;
	}
	self->command_argv = g_strdupv(*arguments + 1);
	/* on to command_line(), in this process: the application is not unique */
	return FALSE;
}

static gint
codechat_application_command_line(GApplication *application, GApplicationCommandLine *cmdline)
{
	CodechatApplication *self = CODECHAT_APPLICATION(application);

	g_assert(self->command != NULL);
	g_debug("running %s", self->command->name);
	g_application_hold(application);
	self->command->run(self);
	/* the status is set when the command finishes, see finish() */
	return 0;
}

static void
codechat_application_finalize(GObject *object)
{
	CodechatApplication *self = CODECHAT_APPLICATION(object);

	global_options_clear(&self->opts);
	g_free(self->server);
	g_free(self->nick);
	g_free(self->token);
	g_free(self->room);
	g_clear_pointer(&self->output, codechat_output_free);
	g_strfreev(self->command_argv);

	G_OBJECT_CLASS(codechat_application_parent_class)->finalize(object);
}

static void
codechat_application_class_init(CodechatApplicationClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	GApplicationClass *app_class = G_APPLICATION_CLASS(klass);

	object_class->finalize = codechat_application_finalize;
	app_class->local_command_line = codechat_application_local_command_line;
	app_class->command_line = codechat_application_command_line;
}

static void
codechat_application_init(CodechatApplication *self)
{
	self->history_limit = CODECHAT_DEFAULT_HISTORY_LIMIT;
}

CodechatApplication *
codechat_application_new(void)
{
	return g_object_new(CODECHAT_TYPE_APPLICATION,
			    "application-id",
			    APPLICATION_ID,
			    "flags",
			    G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_COMMAND_LINE,
			    NULL);
}

gint
codechat_application_get_exit_status(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), 4);
	return self->exit_status;
}

const gchar *
codechat_application_get_command_name(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->command != NULL ? self->command->name : NULL;
}

const gchar *
codechat_application_get_server(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->server;
}

const gchar *
codechat_application_get_nick(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->nick;
}

const gchar *
codechat_application_get_default_room(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->room;
}

gboolean
codechat_application_get_quiet(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), FALSE);
	return self->opts.quiet;
}

/* (nullable): --server or --nick as given, not resolved */
const gchar *
codechat_application_get_server_option(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->opts.server;
}

const gchar *
codechat_application_get_nick_option(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->opts.nick;
}

CodechatNotifyMode
codechat_application_get_notify_mode(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), CODECHAT_NOTIFY_OFF);
	return self->notify_mode;
}

guint
codechat_application_get_history_limit(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), CODECHAT_DEFAULT_HISTORY_LIMIT);
	return self->history_limit;
}

CodechatOutput *
codechat_application_get_output(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return self->output;
}

/* a new, unconnected session with the resolved server, nick and token */
/* CODECHAT_TOKEN, the Secret Service, the tokens file: asked once, when a
 * connection needs it */
static const gchar *
get_token(CodechatApplication *self)
{
	if (!self->token_resolved) {
		self->token = codechat_token_lookup(self->server, self->nick, &self->token_source);
		self->token_resolved = TRUE;
		g_debug("token: %s",
			self->token_source == CODECHAT_TOKEN_SOURCE_ENVIRONMENT
			    ? "from CODECHAT_TOKEN"
			: self->token_source == CODECHAT_TOKEN_SOURCE_KEYRING
			    ? "from the Secret Service"
			: self->token_source == CODECHAT_TOKEN_SOURCE_FILE ? "from the tokens file"
									   : "none");
	}
	return self->token;
}

CodechatConnection *
codechat_application_new_connection(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return codechat_connection_new(self->server, self->nick, get_token(self));
}

/* a session that reconnects and resumes, with the same settings */
CodechatSession *
codechat_application_new_session(CodechatApplication *self)
{
	g_return_val_if_fail(CODECHAT_IS_APPLICATION(self), NULL);
	return codechat_session_new(self->server, self->nick, get_token(self));
}
