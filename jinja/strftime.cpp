#include "jinja/strftime.h"

#include <cstdio>
#include <ctime>

#include "jinja/pystr.h"

namespace tfx::jinja {
namespace {

const char* const kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
const char* const kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                               "July",    "August",   "September", "October", "November", "December"};

// Days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t days_from_civil(std::int64_t y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const std::int64_t yoe = y - era * 400;
    const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

struct Fields {
    int weekday;  // 0 = Sunday
    int yday;     // 0-based day of the year
};

Fields fields_of(const DateTime& t) {
    const std::int64_t days = days_from_civil(t.year, t.month, t.day);
    const auto weekday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
    const auto yday = static_cast<int>(days - days_from_civil(t.year, 1, 1));
    return {weekday, yday};
}

// ISO 8601 week-based year and week number.
std::pair<int, int> iso_week(const DateTime& t) {
    const Fields f = fields_of(t);
    const int iso_weekday = f.weekday == 0 ? 7 : f.weekday;
    int week = (f.yday - iso_weekday + 10) / 7;
    int year = t.year;
    auto weeks_in = [](int y) {
        const Fields jan1 = fields_of(DateTime{y, 1, 1, 0, 0, 0});
        const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return jan1.weekday == 4 || (leap && jan1.weekday == 3) ? 53 : 52;
    };
    if (week < 1) {
        --year;
        week = weeks_in(year);
    } else if (week > weeks_in(year)) {
        ++year;
        week = 1;
    }
    return {year, week};
}

std::string number(long long v, int width, char pad) {
    std::string digits = std::to_string(v < 0 ? -v : v);
    if (pad != 0 && static_cast<int>(digits.size()) < width)
        digits.insert(0, static_cast<std::size_t>(width) - digits.size(), pad);
    return (v < 0 ? "-" : "") + digits;
}

}  // namespace

DateTime DateTime::now_local() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    return DateTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
}

std::optional<DateTime> DateTime::parse(std::string_view text) {
    DateTime t;
    char extra = 0;
    const std::string s(text);
    if (std::sscanf(s.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%c", &t.year, &t.month, &t.day, &t.hour, &t.minute, &t.second,
                    &extra) != 6) {
        return std::nullopt;
    }
    const bool valid = t.month >= 1 && t.month <= 12 && t.day >= 1 && t.day <= 31 && t.hour >= 0 && t.hour <= 23 &&
                       t.minute >= 0 && t.minute <= 59 && t.second >= 0 && t.second <= 60;
    return valid ? std::optional<DateTime>(t) : std::nullopt;
}

std::string strftime(const DateTime& t, std::string_view format) {
    const Fields f = fields_of(t);
    std::string out;
    for (std::size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%' || i + 1 >= format.size()) {
            out += format[i];
            continue;
        }
        const std::size_t start = i;
        char flag = 0;  // glibc flags: '-' no padding, '_' spaces, '0' zeros, '^' upper case
        if (std::string_view("-_0^#").find(format[i + 1]) != std::string_view::npos && i + 2 < format.size()) {
            flag = format[++i];
        }
        const char c = format[++i];
        auto num = [&](long long v, int width, char default_pad) {
            const char pad = flag == '-' ? 0 : flag == '_' ? ' ' : flag == '0' ? '0' : default_pad;
            return number(v, width, pad);
        };
        const int hour12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
        std::string piece;
        switch (c) {
            case 'a':
                piece = std::string(kDays[f.weekday], 3);
                break;
            case 'A':
                piece = kDays[f.weekday];
                break;
            case 'b':
            case 'h':
                piece = std::string(kMonths[t.month - 1], 3);
                break;
            case 'B':
                piece = kMonths[t.month - 1];
                break;
            case 'c':
                piece = strftime(t, "%a %b ") + number(t.day, 2, ' ') + strftime(t, " %H:%M:%S %Y");
                break;
            case 'C':
                piece = num(t.year / 100, 2, '0');
                break;
            case 'd':
                piece = num(t.day, 2, '0');
                break;
            case 'D':
                piece = strftime(t, "%m/%d/%y");
                break;
            case 'e':
                piece = num(t.day, 2, ' ');
                break;
            case 'f':
                piece = "000000";
                break;  // Python's microseconds; "now" has whole seconds
            case 'F':
                piece = strftime(t, "%Y-%m-%d");
                break;
            case 'G':
                piece = num(iso_week(t).first, 1, 0);
                break;
            case 'g':
                piece = num(iso_week(t).first % 100, 2, '0');
                break;
            case 'H':
                piece = num(t.hour, 2, '0');
                break;
            case 'I':
                piece = num(hour12, 2, '0');
                break;
            case 'j':
                piece = num(f.yday + 1, 3, '0');
                break;
            case 'k':
                piece = num(t.hour, 2, ' ');
                break;
            case 'l':
                piece = num(hour12, 2, ' ');
                break;
            case 'm':
                piece = num(t.month, 2, '0');
                break;
            case 'M':
                piece = num(t.minute, 2, '0');
                break;
            case 'n':
                piece = "\n";
                break;
            case 'p':
                piece = t.hour < 12 ? "AM" : "PM";
                break;
            case 'P':
                piece = t.hour < 12 ? "am" : "pm";
                break;
            case 'r':
                piece = strftime(t, "%I:%M:%S %p");
                break;
            case 'R':
                piece = strftime(t, "%H:%M");
                break;
            case 's': {
                std::tm tm{};
                tm.tm_year = t.year - 1900;
                tm.tm_mon = t.month - 1;
                tm.tm_mday = t.day;
                tm.tm_hour = t.hour;
                tm.tm_min = t.minute;
                tm.tm_sec = t.second;
                tm.tm_isdst = -1;
                piece = num(static_cast<long long>(std::mktime(&tm)), 1, 0);
                break;
            }
            case 'S':
                piece = num(t.second, 2, '0');
                break;
            case 't':
                piece = "\t";
                break;
            case 'T':
                piece = strftime(t, "%H:%M:%S");
                break;
            case 'u':
                piece = num(f.weekday == 0 ? 7 : f.weekday, 1, 0);
                break;
            case 'U':
                piece = num((f.yday + 7 - f.weekday) / 7, 2, '0');
                break;
            case 'V':
                piece = num(iso_week(t).second, 2, '0');
                break;
            case 'w':
                piece = num(f.weekday, 1, 0);
                break;
            case 'W':
                piece = num((f.yday + 7 - (f.weekday + 6) % 7) / 7, 2, '0');
                break;
            case 'x':
                piece = strftime(t, "%m/%d/%y");
                break;
            case 'X':
                piece = strftime(t, "%H:%M:%S");
                break;
            case 'y':
                piece = num(t.year % 100, 2, '0');
                break;
            case 'Y':
                piece = num(t.year, 1, 0);
                break;
            case 'z':
            case 'Z':
                break;  // a naive time has no zone
            case '%':
                piece = "%";
                break;
            default:
                piece = std::string(format.substr(start, i - start + 1));
                break;
        }
        out += flag == '^' ? pystr::upper(piece) : piece;
    }
    return out;
}

}  // namespace tfx::jinja
