// PhraseListModel: rows are grounded phrases; check state is the visibility of the phrase's mask.
#include "ui/phrase_list_model.h"

PhraseListModel::PhraseListModel(QObject* parent) : QAbstractListModel(parent) {}

void PhraseListModel::setPhrases(const QVector<GroundedPhrase>& phrases) {
    beginResetModel();
    phrases_ = phrases;
    visible_ = QVector<bool>(phrases.size(), true);
    endResetModel();
}

int PhraseListModel::rowForMask(int mask) const {
    if (mask < 0) return -1;
    for (int row = 0; row < phrases_.size(); ++row)
        if (phrases_[row].mask == mask) return row;
    return -1;
}

bool PhraseListModel::isMaskVisible(int mask) const {
    const int row = rowForMask(mask);
    return row < 0 || visible_[row];
}

int PhraseListModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(phrases_.size());
}

QVariant PhraseListModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= phrases_.size()) return {};
    const GroundedPhrase& p = phrases_[index.row()];
    switch (role) {
    case Qt::DisplayRole:
        return p.mask >= 0 ? tr("%1  (mask %2)").arg(p.text).arg(p.mask + 1) : p.text;
    case Qt::ToolTipRole:
        return p.text;
    case Qt::DecorationRole:
        return p.color.isValid() ? QVariant(p.color) : QVariant();
    case Qt::CheckStateRole:
        return p.mask >= 0 ? QVariant(visible_[index.row()] ? Qt::Checked : Qt::Unchecked)
                           : QVariant();
    case MaskIndexRole:
        return p.mask;
    case BeginRole:
        return p.begin;
    case EndRole:
        return p.end;
    default:
        return {};
    }
}

bool PhraseListModel::setData(const QModelIndex& index, const QVariant& value, int role) {
    if (!index.isValid() || role != Qt::CheckStateRole || phrases_[index.row()].mask < 0)
        return false;
    const bool visible = value.toInt() == Qt::Checked;
    // Every row of the same mask shares its visibility.
    const int mask = phrases_[index.row()].mask;
    for (int row = 0; row < phrases_.size(); ++row) {
        if (phrases_[row].mask != mask) continue;
        visible_[row] = visible;
        emit dataChanged(this->index(row), this->index(row), {Qt::CheckStateRole});
    }
    emit maskVisibilityChanged(mask, visible);
    return true;
}

Qt::ItemFlags PhraseListModel::flags(const QModelIndex& index) const {
    if (!index.isValid()) return Qt::NoItemFlags;
    Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
    if (phrases_[index.row()].mask >= 0) f |= Qt::ItemIsUserCheckable;
    return f;
}
