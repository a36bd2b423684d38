// Qt Todo demo: follows the `todos` of an EDS backend hosted by Updraft, live, over a Managed WebSocket.
//
//   qt-todo --url http://127.0.0.1:8080 --backend <backend id> --username alice   (password in TODO_PASSWORD)
//
// Every option also reads an environment variable, so that the password need not appear in `ps`.

#include "todoclient.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QTimer>

#include <cstdio>

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("qt-todo"));

    const auto env = [](const char *name, const char *fallback = "") {
        return qEnvironmentVariableIsSet(name) ? qEnvironmentVariable(name) : QString::fromUtf8(fallback);
    };
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Lists the todos of an EDS backend, then prints each change pushed over a Managed WebSocket."));
    parser.addHelpOption();
    const QCommandLineOption url({"u", "url"}, "Updraft base URL (env UPDRAFT_URL).", "url",
                                 env("UPDRAFT_URL", "http://127.0.0.1:8080"));
    const QCommandLineOption backend({"b", "backend"}, "EDS backend id (env ENGINIO_BACKEND_ID).", "id",
                                     env("ENGINIO_BACKEND_ID"));
    const QCommandLineOption username({"n", "username"}, "User to sign in as (env TODO_USERNAME).", "name",
                                      env("TODO_USERNAME"));
    const QCommandLineOption password({"p", "password"}, "Their password (env TODO_PASSWORD).", "password",
                                      env("TODO_PASSWORD"));
    parser.addOptions({url, backend, username, password});
    parser.process(app);

    if (parser.value(backend).isEmpty() || parser.value(username).isEmpty()) {
        std::fputs("qt-todo: a backend id and a username are required (see --help)\n", stderr);
        return 2;
    }

    TodoClient client(parser.value(url), parser.value(backend), parser.value(username), parser.value(password));
    QObject::connect(&client, &TodoClient::finished, &app, [](int code) { QCoreApplication::exit(code); });
    // Start from inside the event loop, so that an early failure's exit() is not lost before exec().
    QTimer::singleShot(0, &client, &TodoClient::start);
    return app.exec();
}
